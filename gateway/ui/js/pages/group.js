// A consumer group (/ui/domains/{d}/queues/{q}/groups/{g}): its status from GET G (position,
// lag, pending, ack floor, consumers, circuit, activity), its pending messages (GET
// G/pending), and what can be done to it: replay (PUT G with a position, "earliest",
// "latest" or a time), its TTL (PUT G/ttl), consumers registered and removed, the group
// deleted; the queue's dead letters (widgets/dead-letters.js) with browse and redrive.
// Refreshed every POLL_MS while visible; actions that change the group refresh at once.

import {api, apiPath} from "../api.js";
import {confirmDialog, errorNotice, form, notice, pageHeader, section, statCard, table,
        toast} from "../components.js";
import {fmtAgo, fmtDateTime, fmtDuration, fmtNumber, fmtTime, h, mount,
        uiPath} from "../dom.js";
import {poll} from "../poll.js";
import {circuitBadge} from "../widgets/circuit.js";
import {deadLetters} from "../widgets/dead-letters.js";
import {facts} from "../widgets/facts.js";

export const name = "group";
export const title = (ctx) => `${ctx.params.group} · ${ctx.params.queue}`;

const POLL_MS = 2000;
const PENDING_SHOWN = 200;  // the first entries of the pending list, by position
const STATE_KIND = {delivered: "info", due: "warning", delayed: "muted"};
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/i;

function seconds(text) {
  const units = {ms: 0.001, s: 1, m: 60, h: 3600};
  let total = 0;
  for (const [, n, unit] of String(text).matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(n) * units[unit];
  }
  return total;
}

function ttlText(ttl) {
  return ttl === "0" ? "never expires" : `${ttl} without activity`;
}

function queueRules(config) {
  const r = config.retryConfig, c = config.circuitBreakerConfig;
  return [
    ["Ack timeout", config.ackTimeout, "ackTimeout"],
    ["Retries", config.retryEnabled ? `${r.maxRetries} retries, ${r.initialDelay} × ${r.factor}`
      + ` up to ${r.maxDelay}, then dead-lettered` : "off (a failure is due again at once)",
     "retries"],
    ["Circuit breaker", config.circuitBreakerEnabled ? `opens at ${c.errorThreshold * 100} % `
      + `failures of the last ${c.minimumRequests}, half-open after ${c.openTimeout}, closes `
      + `after ${c.successThreshold} successes` : "off", "breaker"],
  ];
}

/** The replay form: where to move the group to, asked again in a confirmation. */
function replayForm(ctx, base, current, onMoved) {
  const hourAgo = new Date(Date.now() - 3600_000).toISOString();
  const replay = form({
    fields: [
      {name: "mode", label: "Move the group to", type: "select", value: "position",
       options: [["position", "a position"], ["earliest", "the oldest retained message"],
                 ["latest", "the next message to be published"],
                 ["timestamp", "the first message stored at or after a time"]]},
      {name: "position", label: "Position", type: "number", min: 1, step: 1,
       help: "≥ 1; past the end, the group waits for it",
       validate: (v) => (replay?.fields.mode.value() !== "position" ? null
         : Number.isInteger(v) && v >= 1 ? null : "position must be an integer ≥ 1")},
      {name: "timestamp", label: "Time (RFC 3339)", value: hourAgo,
       help: "UTC with Z, or an offset such as +02:00",
       validate: (v) => (replay?.fields.mode.value() !== "timestamp" ? null
         : RFC3339.test(v.trim()) && !Number.isNaN(Date.parse(v.trim())) ? null
           : "timestamp must be an RFC 3339 time like 2025-06-29T10:30:00Z")},
    ],
    submitLabel: "Replay…",
    async onSubmit(values) {
      const group = current();
      const body = values.mode === "timestamp" ? {timestamp: values.timestamp.trim()}
        : {position: values.mode === "position" ? values.position : values.mode};
      const where = values.mode === "timestamp" ? `the first message stored at or after `
          + `${body.timestamp}` : values.mode === "position" ? `position ${values.position}`
        : values.mode === "earliest" ? "the oldest retained message" : "the next message published";
      const ok = await confirmDialog({
        title: `Replay ${group.groupId}?`,
        message: `${group.groupId} will read ${group.queue} from ${where}. Its pending list `
          + `(${fmtNumber(group.pending)}) is dropped and acknowledgements from there on are `
          + "forgotten: those messages are delivered again, and deliveries in flight can no "
          + "longer be acknowledged.",
        confirmLabel: "Move the group"});
      if (!ok) return;
      const moved = await api.put(base, body, {signal: ctx.signal});
      toast(`${moved.groupId} now reads from position ${moved.position} (lag ${moved.lag})`, "ok");
      onMoved(moved);
    },
  });
  const showFor = () => {
    const mode = replay.fields.mode.value();
    replay.fields.position.el.hidden = mode !== "position";
    replay.fields.timestamp.el.hidden = mode !== "timestamp";
  };
  replay.fields.mode.input.addEventListener("change", showFor);
  showFor();
  replay.el.id = "replay-form";
  return replay;
}

export async function render(ctx) {
  const {domain, queue, group: groupId} = ctx.params;
  const base = apiPath(domain, queue, groupId);
  const [first, queueInfo] = await Promise.all([
    api.get(base, {signal: ctx.signal}), api.get(apiPath(domain, queue), {signal: ctx.signal})]);
  let status = first, refreshes = 0;

  // --- the frame ---------------------------------------------------------------------------
  const updated = h("span", {class: "updated"}, "loading…");
  const liveButton = h("button", {type: "button", class: "button button-quiet"}, "Pause");
  const remove = h("button", {type: "button", class: "button button-danger"}, "Delete group…");
  const errors = h("div");
  const stats = h("div", {class: "stats-row", id: "group-stats"});
  const settings = h("div", {id: "group-settings"});
  const consumers = table([
    {label: "Consumer", value: (c) => h("code", null, c.id), sort: (c) => c.id},
    {label: "Last seen", value: (c) => h("span", {title: c.lastSeen}, fmtAgo(c.lastSeen)),
     sort: (c) => c.lastSeen},
    {label: "", class: "actions", value: (c) => h("button", {
      type: "button", class: "button button-quiet consumer-remove",
      onclick: () => removeConsumer(c.id)}, "Remove…")},
  ], {empty: "No consumer: one appears with its first fetch (consumer=<name>) or when "
             + "registered.", rowProps: (c) => ({dataset: {consumer: c.id}})});
  const pending = table([
    {label: "Position", numeric: true, value: (m) => String(m.position), sort: (m) => m.position},
    {label: "Id", value: (m) => h("code", null, m.id)},
    {label: "Consumer", value: (m) => m.consumer || h("span", {class: "muted"}, "–")},
    {label: "Deliveries", numeric: true, value: (m) => fmtNumber(m.deliveryCount),
     sort: (m) => m.deliveryCount},
    {label: "Deadline", value: (m) => (m.deadline ? h("span", {title: m.deadline},
                                                       fmtTime(m.deadline)) : "–")},
    {label: "State", value: (m) => h("span", {class: `badge badge-${STATE_KIND[m.state] || "info"}`},
                                     m.state), sort: (m) => m.state},
    {label: "Last nack reason", value: (m) => m.lastNackReason || "–"},
  ], {empty: "Nothing pending: every delivery is acknowledged.",
      rowProps: (m) => ({dataset: {position: String(m.position), state: m.state}})});
  const pendingNote = h("p", {class: "chart-note", id: "pending-count"});
  const dlq = deadLetters({domain, queue, queueInfo, group: groupId, signal: ctx.signal});

  const ttl = form({
    fields: [{name: "ttl", label: "TTL", value: status.ttl,
              help: "a duration such as 24h or 90m; 0: never expires. The group is deleted "
                    + "after this long without a fetch, ack, nack, replay or TTL change."}],
    submitLabel: "Change TTL",
    async onSubmit(values) {
      const changed = await api.put(`${base}/ttl`, {ttl: values.ttl.trim()}, {signal: ctx.signal});
      toast(`TTL of ${groupId}: ${ttlText(changed.ttl)}`, "ok");
      draw(changed);
    },
  });
  ttl.el.id = "ttl-form";
  const register = form({
    fields: [{name: "consumerId", label: "Consumer", required: true,
              help: "registered consumers are kept across restarts; fetching with "
                    + "consumer=<name> is enough to take part"}],
    submitLabel: "Register",
    async onSubmit(values, self) {
      const reply = await api.post(`${base}/consumers`, {consumerId: values.consumerId.trim()},
                                   {signal: ctx.signal});
      self.fields.consumerId.input.value = "";
      toast(`${values.consumerId} registered in ${groupId}`, "ok");
      draw(reply);
    },
  });
  register.el.id = "register-form";
  const replay = replayForm(ctx, base, () => status, (moved) => { draw(moved); live.refresh(); });

  ctx.root.append(
    pageHeader(groupId, liveButton, updated, remove),
    h("p", {class: "breadcrumb"}, "Consumer group of ", h("a", {href: uiPath(domain, queue)}, queue),
      " in ", h("a", {href: uiPath(domain)}, domain), " · ",
      h("a", {href: "/ui/consumer-groups"}, "every group")),
    errors, stats,
    h("div", {class: "grid grid-1-1"},
      section("Status and settings", {id: "group-status"}, settings, ttl.el),
      section("Replay", {id: "replay"}, h("p", {class: "chart-note"},
        "Move where the group reads from. Later fetches read from there; the pending list is "
        + "dropped."), replay.el)),
    section("Consumers", {id: "consumers"}, consumers.el, register.el),
    section("Pending messages", {id: "pending"}, pending.el, pendingNote),
    dlq.el);

  // --- drawing -----------------------------------------------------------------------------
  function draw(group) {
    status = group;
    const lagKind = group.lag > 0 && group.consumers.length === 0 ? "warning" : null;
    mount(stats,
      statCard({key: "position", label: "Position", value: fmtNumber(group.position),
                detail: "next to deliver"}),
      statCard({key: "lag", label: "Lag", value: fmtNumber(group.lag), kind: lagKind,
                detail: "not yet delivered"}),
      statCard({key: "pending", label: "Pending", value: fmtNumber(group.pending),
                detail: "delivered, not acknowledged"}),
      statCard({key: "ackFloor", label: "Ack floor", value: fmtNumber(group.ackFloor),
                detail: "all below acknowledged"}),
      statCard({key: "consumers", label: "Consumers", value: fmtNumber(group.consumers.length),
                detail: `${fmtNumber(group.waiting)} long polls waiting`}),
      statCard({key: "circuit", label: "Circuit", value: circuitBadge(group.circuit),
                kind: group.circuit === "open" ? "critical" : null,
                detail: group.circuit === "disabled" ? "no breaker on this queue" : null}));
    const idle = (Date.now() - Date.parse(group.lastActivity)) / 1000;
    mount(settings, facts([
      ["Ack mode", group.ackMode, "ackMode"],
      ["Start", String(group.start), "start"],
      ["TTL", ttlText(group.ttl), "ttl"],
      ["Created", fmtDateTime(group.createdAt), "createdAt"],
      ["Last activity", h("span", {title: group.lastActivity},
        `${fmtDateTime(group.lastActivity)} (${fmtAgo(group.lastActivity)})`), "lastActivity"],
      ["Expires", group.ttl === "0" ? "never" : `in about ${fmtDuration(
        Math.max(0, seconds(group.ttl) - idle))} unless used`, "expires"],
      ["Expired unacknowledged", fmtNumber(group.expired ?? 0), "expired"],
      ...queueRules(queueInfo.config),
    ]));
    consumers.update(group.consumers);
    stats.dataset.refreshes = String(++refreshes);
  }

  function drawPending(reply) {
    pending.update(reply.messages);
    mount(pendingNote, reply.count > reply.messages.length
      ? `${fmtNumber(reply.count)} pending; the first ${fmtNumber(reply.messages.length)} by `
        + "position are listed."
      : `${fmtNumber(reply.count)} pending.`);
    pendingNote.dataset.count = String(reply.count);
  }

  // --- actions -----------------------------------------------------------------------------
  async function removeConsumer(consumer) {
    const ok = await confirmDialog({
      title: `Remove ${consumer}?`,
      message: `${consumer} leaves ${groupId}; what it holds in flight is due at once for the `
        + "other consumers. A consumer that fetches again comes back.",
      confirmLabel: "Remove"});
    if (!ok) return;
    try {
      draw(await api.del(`${base}/consumers/${encodeURIComponent(consumer)}`,
                         {signal: ctx.signal}));
      toast(`${consumer} removed from ${groupId}`, "ok");
      live.refresh();
    } catch (err) {
      mount(errors, errorNotice(err));
    }
  }

  remove.addEventListener("click", async () => {
    const ok = await confirmDialog({
      title: `Delete the group ${groupId}?`,
      message: `Its position, acknowledgements and ${fmtNumber(status.pending)} pending `
        + `deliveries go; the messages stay in ${queue} for its other groups. Long polls waiting `
        + "on it are answered 404.",
      confirmLabel: "Delete the group", typeToConfirm: groupId});
    if (!ok) return;
    try {
      await api.del(base, {signal: ctx.signal});
      toast(`Consumer group ${groupId} deleted`, "ok");
      ctx.navigate(`/ui/consumer-groups?filter=${encodeURIComponent(`${domain}/${queue}`)}`);
    } catch (err) {
      mount(errors, errorNotice(err));
    }
  });

  // --- refreshing --------------------------------------------------------------------------
  const live = poll(async (signal) => {
    const [group, list] = await Promise.all([
      api.get(base, {signal}),
      api.get(`${base}/pending`, {query: {limit: PENDING_SHOWN}, signal})]);
    draw(group);
    drawPending(list);
    await dlq.refresh(signal);
    mount(updated, `updated ${fmtTime(Date.now())}`);
  }, {
    intervalMs: POLL_MS, signal: ctx.signal,
    onError: (err) => {
      mount(errors, err ? errorNotice(err) : null);
      if (err?.status === 404) {  // deleted elsewhere, or expired: stop asking
        live.pause();
        errors.append(notice("info", "The group is gone. ",
                             h("a", {href: "/ui/consumer-groups"}, "Every consumer group")));
      }
    },
    onState: (control) => {
      liveButton.textContent = control.paused ? "Resume" : "Pause";
      liveButton.setAttribute("aria-pressed", String(control.paused));
      if (control.paused) mount(updated, "paused");
    },
  });
  liveButton.addEventListener("click", () => (live.paused ? live.resume() : live.pause()));
  draw(first);
  await live.first;
}
