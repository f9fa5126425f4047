// One queue (/ui/domains/{d}/queues/{q}): its positions, retained messages and bytes, fill
// against maxSize, config, consumer groups (lag, pending, circuit; each links to its page),
// its dead letters ({q}.dlq: widgets/dead-letters.js, with redrive); the live view
// (WebSocket), the publisher, the retained messages read without consuming them; delete
// behind a typed confirmation.
// The figures and groups are refreshed every POLL_MS while visible; the live view follows the
// queue by itself.

import {api, apiPath} from "../api.js";
import {badge, errorNotice, notice, pageHeader, section, statCard, table} from "../components.js";
import {fillLevel} from "../charts.js";
import {fmtAgo, fmtBytes, fmtNumber, fmtPercent, h, mount, uiPath} from "../dom.js";
import {poll} from "../poll.js";
import {deleteQueue} from "./domain.js";
import {retainedView} from "../widgets/browse.js";
import {deadLetters} from "../widgets/dead-letters.js";
import {liveView} from "../widgets/live.js";
import {publisher} from "../widgets/publisher.js";
import {configList, dlqSource, fillStrip, percentOf} from "../widgets/queue-parts.js";

export const name = "queue";
export const title = (ctx) => `${ctx.params.queue} · ${ctx.params.domain}`;

const POLL_MS = 5000;
const CIRCUIT = {disabled: "muted", closed: "ok", open: "critical", "half-open": "warning"};

function groupTable(domain, queue) {
  return table([
    {label: "Group", sort: (g) => g.groupId,
     value: (g) => h("a", {href: uiPath(domain, queue, g.groupId)}, g.groupId)},
    {label: "Ack mode", value: (g) => g.ackMode},
    {label: "Position", numeric: true, sort: (g) => g.position, value: (g) => fmtNumber(g.position)},
    {label: "Lag", numeric: true, sort: (g) => g.lag, value: (g) => fmtNumber(g.lag)},
    {label: "Pending", numeric: true, sort: (g) => g.pending, value: (g) => fmtNumber(g.pending)},
    {label: "Consumers", numeric: true, sort: (g) => g.consumers.length,
     value: (g) => fmtNumber(g.consumers.length)},
    {label: "Circuit", value: (g) => badge(g.circuit, CIRCUIT[g.circuit] || "info")},
    {label: "Last activity", sort: (g) => g.lastActivity, value: (g) => h("time", {
      datetime: g.lastActivity, title: g.lastActivity}, fmtAgo(g.lastActivity))},
  ], {empty: "No consumer group reads this queue.",
      rowProps: (g) => ({dataset: {group: g.groupId}})});
}

export async function render(ctx) {
  const {domain, queue} = ctx.params;
  // The queue (an unknown one is the page's error) and its domain, for the schema the
  // publisher starts from (the page goes on without it).
  let [info, domainInfo] = await Promise.all([
    api.get(apiPath(domain, queue), {signal: ctx.signal}),
    api.get(apiPath(domain), {signal: ctx.signal}).catch((err) => {
      if (ctx.signal.aborted) throw err;
      return {error: err};
    }),
  ]);
  const source = dlqSource(queue);

  const errors = h("div");
  const totals = h("div", {class: "stats-row", id: "queue-totals"});
  const groups = groupTable(domain, queue);
  const configBox = h("div", {id: "queue-config"});

  const live = liveView({domain, queue, signal: ctx.signal});
  const dlq = deadLetters({domain, queue, queueInfo: info, signal: ctx.signal});
  const publish = publisher({domain, queue, schema: domainInfo.schema, signal: ctx.signal,
                             onPublished: () => refresher.refresh()});
  const retained = retainedView({domain, queue, signal: ctx.signal,
                                 current: () => api.get(apiPath(domain, queue), {signal: ctx.signal})});

  const remove = h("button", {type: "button", class: "button button-danger", id: "delete-queue",
    onclick: async () => {
      try {
        if (await deleteQueue(domain, queue, {signal: ctx.signal})) ctx.navigate(uiPath(domain));
      } catch (err) {
        mount(errors, errorNotice(err));
      }
    }}, "Delete queue");

  function drawTotals() {
    const percent = percentOf(info.messageCount, info.config.maxSize);
    const level = fillLevel(percent);
    mount(totals,
      statCard({key: "messages", label: "Retained messages", value: fmtNumber(info.messageCount),
                detail: `${fmtPercent(percent)} of maxSize ${fmtNumber(info.config.maxSize)}`,
                kind: level === "ok" ? null : level, extra: fillStrip(percent)}),
      statCard({key: "bytes", label: "Retained bytes", value: fmtBytes(info.bytes)}),
      statCard({key: "first", label: "First position", value: fmtNumber(info.firstPosition),
                detail: "the oldest retained"}),
      statCard({key: "last", label: "Last position", value: fmtNumber(info.lastPosition),
                detail: "the newest ever assigned"}),
      statCard({key: "groups", label: "Consumer groups", value: fmtNumber(info.groups)}),
      statCard({key: "expired", label: "Expired", value: fmtNumber(info.expired ?? 0),
                detail: `ttl ${info.config.ttl}`}));
    totals.dataset.percent = percent.toFixed(1);
  }

  async function refresh(signal) {
    const [next, list] = await Promise.all([
      refreshed ? api.get(apiPath(domain, queue), {signal}) : info,
      api.get(apiPath(domain, queue) + "/consumer-groups", {signal}),
      dlq.refresh(signal),
    ]);
    refreshed = true;
    info = next;
    drawTotals();
    groups.update(list.groups);
  }
  let refreshed = false;

  mount(configBox, configList(info.config));
  const page = h("div", {class: "queue-page"},
    h("p", {class: "breadcrumbs"}, h("a", {href: "/ui/domains"}, "Domains"), " / ",
      h("a", {href: uiPath(domain)}, domain), " / "),
    pageHeader(queue, remove),
    source ? notice("info", "This queue holds the dead letters of ",
                    h("a", {href: uiPath(domain, source)}, `${domain}/${source}`), ".") : null,
    errors, totals,
    h("div", {class: "grid grid-2-1"},
      section("Live view", {id: "live"}, live.el),
      section("Publish", {id: "publish"}, publish.el)),
    h("div", {class: "grid grid-2-1"},
      section("Consumer groups", {id: "groups"}, groups.el),
      dlq.el),
    section("Retained messages", {id: "retained"}, retained.el),
    section("Configuration", {id: "config"}, configBox,
            h("p", {class: "field-help"}, "A queue's settings are fixed when it is created.")));

  const refresher = poll(refresh, {intervalMs: POLL_MS, signal: ctx.signal,
                                   onError: (err) => mount(errors, err ? errorNotice(err) : null)});
  await refresher.first;
  ctx.root.append(page);
  page.dataset.ready = "true";
}
