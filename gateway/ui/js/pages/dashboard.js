// The dashboard (/ui/): totals, publish and consume rates over time, the fullest queues,
// alerts and recent events from GET /api/stats; every process's CPU and memory from
// GET /api/resources/current (and /history once, for the curves' past). Refreshed every
// POLL_MS while the tab is visible, one request set at a time (poll.js). Only what is shown
// is drawn: ten queues, the first alerts and events, however many the broker holds.

import {api} from "../api.js";
import {fillBars, gauge, lineChart, sparkline} from "../charts.js";
import {badge, errorNotice, notice, pageHeader, section, statCard, table} from "../components.js";
import {fmtAgo, fmtBytes, fmtDuration, fmtNumber, fmtPercent, fmtTime, h, mount,
        uiPath} from "../dom.js";
import {poll} from "../poll.js";

export const name = "dashboard";
export const title = "Dashboard";

const POLL_MS = 5000;
const HISTORY_SAMPLES = 120;  // per process: 10 minutes at the default monitoring.interval
const SHOWN_ALERTS = 8;
const SHOWN_EVENTS = 12;
const PERIODS = ["1h", "6h", "12h", "24h"];
const GRANULARITIES = ["10s", "1m", "5m", "15m", "30m", "1h"];
const MAX_BUCKETS = 720;  // granularities finer than period/720 are not offered
const SECONDS = {s: 1, m: 60, h: 3600};

function seconds(duration) {
  return Number(duration.slice(0, -1)) * SECONDS[duration.slice(-1)];
}

function granularitiesFor(period) {
  return GRANULARITIES.filter((g) => seconds(period) / seconds(g) <= MAX_BUCKETS &&
                                     seconds(g) < seconds(period));
}

function defaultGranularity(period) {
  return {"1h": "1m", "6h": "5m", "12h": "15m", "24h": "30m"}[period];
}

function processKey(p) {
  return `${p.node}/${p.role}-${p.index}`;
}

function processName(p) {
  return p.role === "supervisor" ? "supervisor" : `${p.role} ${p.index}`;
}

const SEVERITY = {critical: "critical", warning: "warning", error: "critical", info: "info"};

function picker(label, value, options, onChange) {
  const select = h("select", {"aria-label": label, onchange: () => onChange(select.value)},
                   options.map((o) => h("option", {value: o, selected: o === value}, o)));
  return h("label", {class: "picker"}, h("span", null, label), select);
}

function queueLink(item) {
  return item.domain && item.queue
    ? h("a", {href: uiPath(item.domain, item.queue)}, `${item.domain}/${item.queue}`)
    : item.domain ? h("a", {href: uiPath(item.domain)}, item.domain) : null;
}

/** The past of every process, kept here and extended by each /current answer. */
class ProcessHistory {
  constructor() { this.samples = new Map(); }

  load(history) {
    for (const p of history.processes) this.samples.set(processKey(p), [...p.samples]);
  }

  add(processes) {
    for (const p of processes) {
      const list = this.samples.get(processKey(p)) || [];
      if (!list.length || list[list.length - 1].timestamp < p.timestamp) list.push(p);
      if (list.length > HISTORY_SAMPLES) list.splice(0, list.length - HISTORY_SAMPLES);
      this.samples.set(processKey(p), list);
    }
  }

  series(processes, pick) {
    return processes.map((p, i) => ({
      name: processName(p), key: processKey(p), color: i % 8,
      points: (this.samples.get(processKey(p)) || []).map((s) => [Date.parse(s.timestamp), pick(s)]),
    }));
  }
}

export async function render(ctx) {
  let period = PERIODS.includes(ctx.query.get("period")) ? ctx.query.get("period") : "1h";
  let granularity = ctx.query.get("granularity");
  if (!granularitiesFor(period).includes(granularity)) granularity = defaultGranularity(period);
  const history = new ProcessHistory();
  let historyLoaded = false, eventsShown = SHOWN_EVENTS, lastStats = null;

  // --- the frame, drawn once; each refresh fills its parts --------------------------------
  const updated = h("span", {class: "updated", "aria-live": "off"}, "loading…");
  const liveButton = h("button", {type: "button", class: "button button-quiet"}, "Pause");
  const granularityBox = h("span");
  const drawGranularity = () => mount(granularityBox, picker("Granularity", granularity,
    granularitiesFor(period), (value) => { granularity = value; changed(); }));
  drawGranularity();
  const header = pageHeader("Dashboard",
    picker("Period", period, PERIODS, (value) => {
      period = value;
      if (!granularitiesFor(period).includes(granularity)) granularity = defaultGranularity(period);
      drawGranularity();
      changed();
    }),
    granularityBox, liveButton, updated);
  const problems = h("div", {class: "problems"});
  const totals = h("div", {class: "stats-row", id: "totals"});
  const rates = lineChart({height: 240, label: "published and consumed messages per second",
                           valueFormat: (v) => `${fmtNumber(v)}/s`,
                           empty: "No rates yet."});
  const ratesNote = h("p", {class: "chart-note"});
  const fullest = h("div", {id: "top-queues"});
  const alerts = h("div", {id: "alerts"});
  const events = h("div", {id: "events"});
  const processes = table([
    {label: "Process", value: (p) => h("span", {class: "process-name"}, processName(p),
                                       showNodes ? h("small", null, ` ${p.node}`) : null)},
    {label: "PID", value: (p) => String(p.pid), numeric: true},
    {label: "CPU", numeric: true, value: (p) => h("span", {class: "with-spark"},
      sparkline(history.series([p], (s) => s.cpuPercent)[0].points.map((pt) => pt[1]),
                {label: `${processName(p)} CPU`}), fmtPercent(p.cpuPercent))},
    {label: "Memory (RSS)", numeric: true, value: (p) => h("span", {class: "with-spark"},
      sparkline(history.series([p], (s) => s.rssBytes)[0].points.map((pt) => pt[1]),
                {color: 1, label: `${processName(p)} memory`}), fmtBytes(p.rssBytes))},
    {label: "Threads", numeric: true, value: (p) => fmtNumber(p.threads)},
    {label: "Open files", numeric: true, value: (p) => fmtNumber(p.openFiles)},
    {label: "Uptime", numeric: true, value: (p) => fmtDuration(p.uptimeSeconds)},
    {label: "Disk", numeric: true, value: (p) => (p.diskBytes === undefined ? "" : fmtBytes(p.diskBytes))},
  ], {empty: "No process has reported yet.",
      rowProps: (p) => ({dataset: {process: p.role === "supervisor" ? p.role
                                                                     : `${p.role}-${p.index}`}})});
  const processTotals = h("p", {class: "chart-note"});
  const cpu = lineChart({height: 180, label: "CPU per process", yFormat: (v) => `${v} %`,
                         valueFormat: fmtPercent, empty: "No samples yet."});
  const memory = lineChart({height: 180, label: "memory per process", yFormat: fmtBytes,
                            valueFormat: fmtBytes, empty: "No samples yet.", byteAxis: true});
  let showNodes = false;  // only when processes of several nodes report

  ctx.root.append(
    header, problems, totals,
    h("div", {class: "grid grid-2-1"},
      section("Message rates", {id: "rates"}, rates.el, ratesNote),
      section("Queue alerts", {id: "alerts-panel"}, alerts)),
    h("div", {class: "grid grid-1-1"},
      section("Fullest queues", {id: "top-queues-panel"}, fullest),
      section("Recent events", {id: "events-panel"}, events)),
    section("Processes", {id: "processes"}, processes.el, processTotals,
            h("div", {class: "grid grid-1-1"},
              h("div", null, h("h3", null, "CPU"), cpu.el),
              h("div", null, h("h3", null, "Memory"), memory.el))));
  ctx.signal.addEventListener("abort", () => { rates.disconnect(); cpu.disconnect(); memory.disconnect(); });

  // --- drawing ----------------------------------------------------------------------------
  function drawTotals(stats) {
    const shards = stats.shards;
    const level = shards.up === shards.total ? "ok" : shards.up === 0 ? "critical" : "warning";
    mount(totals,
      statCard({key: "domains", label: "Domains", value: fmtNumber(stats.domains), href: "/ui/domains"}),
      statCard({key: "queues", label: "Queues", value: fmtNumber(stats.queues)}),
      statCard({key: "groups", label: "Consumer groups", value: fmtNumber(stats.groups),
                href: "/ui/consumer-groups"}),
      statCard({key: "messages", label: "Messages", value: fmtNumber(stats.messages),
                detail: `${fmtNumber(stats.messageRates.at(-1)?.publishedTotal ?? 0)} published `
                        + `in ${stats.period}`}),
      statCard({key: "shards", label: "Shards up", value: `${shards.up} / ${shards.total}`,
                kind: level, extra: gauge(shards.up, shards.total, {label: "shards up", level})}));
  }

  function drawProblems(stats) {
    mount(problems, stats.shards.down.length ? notice("warning",
      `Shard${stats.shards.down.length > 1 ? "s" : ""} ${stats.shards.down.join(", ")} did not `
      + "answer: the figures leave out what they hold.") : null);
  }

  function drawRates(stats) {
    const step = seconds(stats.granularity);
    const buckets = stats.messageRates;
    const at = (b) => Date.parse(b.timestamp);
    const last = buckets[buckets.length - 1];
    rates.update([
      {name: "Published", key: "published", color: 0, area: true,
       total: last ? last.publishedTotal : 0,
       points: buckets.map((b) => [at(b), b.published / step])},
      {name: "Consumed", key: "consumed", color: 1, area: true,
       total: last ? last.consumedTotal : 0,
       points: buckets.map((b) => [at(b), b.consumed / step])},
    ]);
    mount(ratesNote, `Messages per second, averaged per ${stats.granularity}, over the last `
          + `${stats.period}; totals for the period in the legend.`);
  }

  function drawQueues(stats) {
    mount(fullest, fillBars(stats.topQueues.map((q) => ({
      label: `${q.domain}/${q.queue}`, href: uiPath(q.domain, q.queue), percent: q.usage,
      text: `${fmtNumber(q.messages)} of ${fmtNumber(q.maxSize)}`,
    })), {empty: "No queue holds messages."}));
  }

  function drawAlerts(stats) {
    const list = stats.queueAlerts;
    if (!list.length) {
      mount(alerts, h("p", {class: "empty"}, "No queue is over 75 % full."));
      return;
    }
    mount(alerts, h("ul", {class: "alert-list"}, list.slice(0, SHOWN_ALERTS).map((a) =>
      h("li", {class: `alert alert-${a.level}`, dataset: {queue: `${a.domain}/${a.queue}`}},
        badge(a.level, a.level), h("span", {class: "alert-text"}, queueLink(a),
          h("span", null, ` ${fmtPercent(a.usage)} full (${fmtNumber(a.messages)} of `
                          + `${fmtNumber(a.maxSize)})`))))),
      list.length > SHOWN_ALERTS ? h("p", {class: "more-note"},
        `and ${fmtNumber(list.length - SHOWN_ALERTS)} more queues over 75 %`) : null);
  }

  function drawEvents(stats) {
    const list = stats.recentEvents;
    if (!list.length) {
      mount(events, h("p", {class: "empty"}, `No event in the last ${stats.period}.`));
      return;
    }
    const now = Date.now();
    mount(events, h("ol", {class: "event-list"}, list.slice(0, eventsShown).map((e) =>
      h("li", {class: "event", dataset: {type: e.type}},
        h("time", {datetime: e.timestamp, title: e.timestamp}, fmtTime(e.timestamp)),
        badge(e.type.replaceAll("_", " "), SEVERITY[e.severity] || "info"),
        h("span", {class: "event-text"}, e.message),
        h("small", {class: "event-ago"}, fmtAgo(e.timestamp, now))))),
      list.length > eventsShown ? h("button", {type: "button", class: "button button-quiet more",
        onclick: () => { eventsShown = list.length; drawEvents(lastStats); }},
        `Show all ${list.length}`) : null);
  }

  function drawProcesses(current) {
    showNodes = new Set(current.processes.map((p) => p.node)).size > 1;
    history.add(current.processes);
    processes.update(current.processes);
    const t = current.totals;
    mount(processTotals, `${t.processes} processes: CPU ${fmtPercent(t.cpuPercent)}, memory `
          + `${fmtBytes(t.rssBytes)}, ${fmtNumber(t.threads)} threads, ${fmtNumber(t.openFiles)} `
          + `open files; disk ${fmtBytes(current.disk.totalBytes)}.`);
    cpu.update(history.series(current.processes, (s) => s.cpuPercent));
    memory.update(history.series(current.processes, (s) => s.rssBytes));
  }

  // --- refreshing -------------------------------------------------------------------------
  async function refresh(signal) {
    const query = {period, granularity};
    const [stats, current, past] = await Promise.all([
      api.get("/api/stats", {query, signal}),
      api.get("/api/resources/current", {signal}),
      historyLoaded ? null : api.get("/api/resources/history", {query: {limit: HISTORY_SAMPLES},
                                                                signal}),
    ]);
    if (past) { history.load(past); historyLoaded = true; }
    lastStats = stats;
    drawProblems(stats);
    drawTotals(stats);
    drawRates(stats);
    drawQueues(stats);
    drawAlerts(stats);
    drawEvents(stats);
    drawProcesses(current);
    mount(updated, `updated ${fmtTime(Date.now())}`);
  }

  const errors = h("div");
  problems.before(errors);
  const live = poll(refresh, {
    intervalMs: POLL_MS, signal: ctx.signal,
    onError: (err) => mount(errors, err ? errorNotice(err) : null),
    onState: (control) => {
      liveButton.textContent = control.paused ? "Resume" : "Pause";
      liveButton.setAttribute("aria-pressed", String(control.paused));
      if (control.paused) mount(updated, "paused");
    },
  });
  liveButton.addEventListener("click", () => (live.paused ? live.resume() : live.pause()));
  function changed() {
    ctx.setQuery({period, granularity});
    live.refresh();
  }
  await live.first;
  performance.mark("dashboard-ready");  // tests/ui/test_dashboard.py reads it
}
