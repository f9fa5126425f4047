// Dead letters of a queue {q}: how many {q}.dlq holds, its messages read without consuming
// them, and redrive (POST Q/dlq/redrive) back to {q} with a confirmation. The group page
// mounts it; any page about a queue may:
//
//   const dlq = deadLetters({domain, queue, queueInfo, group, signal: ctx.signal});
//   parent.append(dlq.el);
//   await dlq.refresh(signal);          // on each poll of the page
//
// Reading without consuming: the API has no browse route, but a queue's event stream
// (GET Q/stream?from=N, Server-Sent Events) first sends every stored message after position
// N, and reading it delivers nothing to any consumer group. A page of dead letters is read
// from the stream of {q}.dlq, then the stream is closed. EventSource cannot send headers, so
// a signed-in user's token goes as ?token= (docs/security.md).
//
// Whether {q}.dlq exists is read from the domain's queue list (a GET of a missing queue is a
// 404, which the browser would log as an error on every refresh); once it exists, its own GET.

import {api, apiPath, session} from "../api.js";
import {confirmDialog, errorNotice, form, notice, section, table, toast} from "../components.js";
import {fmtBytes, fmtDateTime, fmtNumber, h, mount, uiPath} from "../dom.js";

const PAGE = 50;               // dead letters read per "show" / "show more"
const IDLE_MS = 2000;          // the stream's replay is done when nothing came for this long
const LIST_EVERY_MS = 10_000;  // how often a missing {q}.dlq is looked for again
const PREVIEW_CHARS = 160;

function header(message, key) {
  return message.headers?.[key] ?? null;
}

/**
 * Stored messages of domain/queue after position `after`, at most `max`, up to position
 * `until`: read from its event stream, which is then closed.
 */
export function readStored(domain, queue, {after, until, max, signal}) {
  return new Promise((resolve, reject) => {
    const query = new URLSearchParams({from: String(after)});
    const token = session.current()?.token;
    if (token) query.set("token", token);
    const source = new EventSource(`${apiPath(domain, queue)}/stream?${query}`);
    const got = [];
    let idle = 0;
    const finish = (err) => {
      clearTimeout(idle);
      source.close();
      signal?.removeEventListener("abort", abort);
      if (err) reject(err);
      else resolve(got);
    };
    const abort = () => finish(new DOMException("the page was left", "AbortError"));
    const arm = () => { clearTimeout(idle); idle = setTimeout(() => finish(null), IDLE_MS); };
    source.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      got.push(message);
      if (got.length >= max || message.position >= until) finish(null);
      else arm();
    });
    source.addEventListener("end", () => finish(null));  // the queue was deleted
    source.addEventListener("error", () => finish(got.length ? null : new Error(
      `the event stream of ${domain}/${queue} could not be read`)));
    signal?.addEventListener("abort", abort);
    arm();
  });
}

function payloadPreview(message) {
  const text = JSON.stringify(message.payload);
  return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}…` : text;
}

export function deadLetters({domain, queue, queueInfo = null, group = null, signal}) {
  const dlqName = `${queue}.dlq`;
  let info = null, known = false, listedAt = 0, shown = [], browsing = false;

  const summary = h("div", {class: "dlq-summary"});
  const result = h("div", {class: "dlq-result"});
  const list = h("div", {class: "dlq-list"});
  const browse = h("button", {type: "button", class: "button dlq-browse"}, "Show dead letters");
  const errors = h("div");

  const messages = table([
    {label: "Position", numeric: true, value: (m) => String(m.position), sort: (m) => m.position},
    {label: "Id", value: (m) => h("code", null, m.id)},
    {label: "From group", value: (m) => {
      const from = header(m, "x-origin-group");
      return from === group && group !== null
        ? h("span", null, from, " ", h("span", {class: "badge badge-info"}, "this group")) : from;
    }},
    {label: "Attempts", numeric: true, value: (m) => header(m, "x-attempts") ?? "–"},
    {label: "Reason", value: (m) => header(m, "x-reason") ?? "–"},
    {label: "Original position", numeric: true,
     value: (m) => header(m, "x-original-position") ?? "–"},
    {label: "Dead-lettered", value: (m) => fmtDateTime(m.timestamp)},
    {label: "Payload", class: "dlq-payload", value: (m) => h("details", null,
      h("summary", null, h("code", null, payloadPreview(m))),
      h("pre", {class: "json"}, JSON.stringify({headers: m.headers, payload: m.payload}, null, 2)))},
  ], {empty: "No dead letter is stored.", limit: PAGE,
      rowProps: (m) => ({dataset: {position: String(m.position),
                                   origin: header(m, "x-origin-group") ?? ""}})});

  const redrive = form({
    fields: [{name: "limit", label: "At most", type: "number", min: 1, max: 10000, step: 1,
              placeholder: "all (10,000)",
              help: "oldest first; empty: up to 10,000"}],
    submitLabel: "Redrive…",
    async onSubmit(values) {
      const limit = values.limit;
      const held = info?.messageCount ?? 0;
      const ok = await confirmDialog({
        title: `Redrive the dead letters of ${queue}?`,
        message: `Up to ${fmtNumber(limit ?? 10000)} of the `
          + `${fmtNumber(held)} messages in ${dlqName} move back to the end of ${queue}, oldest `
          + "first, with their id and payload and without the x- headers: every consumer group "
          + `of ${queue} gets them again.`,
        confirmLabel: "Redrive", danger: false});
      if (!ok) return;
      const reply = await api.post(`${apiPath(domain, queue)}/dlq/redrive`,
                                   limit === null ? {} : {limit}, {signal});
      mount(result, notice("ok", h("span", {dataset: {redriven: String(reply.redriven)}},
        `Moved ${fmtNumber(reply.redriven)} dead letter${reply.redriven === 1 ? "" : "s"} back `
        + `to ${queue}.`)));
      toast(`${fmtNumber(reply.redriven)} dead letters back in ${queue}`, "ok");
      shown = [];
      mount(list);
      await out.refresh(signal);
    },
  });
  redrive.el.classList.add("dlq-redrive");

  const el = section("Dead letters", {id: "dead-letters", actions: [browse]},
                     errors, summary, result, redrive.el, list);

  function retriesNote() {
    const config = queueInfo?.config;
    if (!config) return null;
    if (!config.retryEnabled) {
      return notice("info", `Retries are off on ${queue}: a failed delivery is due again at `
        + "once, without limit, so nothing is dead-lettered.");
    }
    const r = config.retryConfig;
    return h("p", {class: "dlq-rule"}, `A delivery that fails ${fmtNumber(r.maxRetries + 1)} `
      + `time${r.maxRetries ? "s" : ""} (${fmtNumber(r.maxRetries)} retries) moves to `,
      h("code", null, dlqName), ".");
  }

  function drawSummary() {
    const link = h("a", {href: uiPath(domain, dlqName)}, dlqName);
    if (!info) {
      mount(summary, retriesNote(), h("p", {class: "empty", dataset: {dlq: "none"}},
        "No dead letters: ", h("code", null, dlqName), " does not exist yet (it is created with "
        + "the first message dead-lettered)."));
    } else {
      const count = info.messageCount;
      mount(summary, retriesNote(), h("p", {dataset: {dlq: "exists", count: String(count)}},
        link, count ? ` holds ${fmtNumber(count)} dead letter${count === 1 ? "" : "s"} `
          + `(${fmtBytes(info.bytes)}), positions ${info.firstPosition}–${info.lastPosition}. `
          : " holds no message. ",
        "Redriving moves them back to ", h("code", null, queue),
        group ? " for every group, not only this one." : "."));
    }
    browse.hidden = !info || !info.messageCount;
    redrive.el.hidden = !info || !info.messageCount;
  }

  async function look(signalNow) {
    if (known) {
      try {
        info = await api.get(apiPath(domain, dlqName), {signal: signalNow});
        return;
      } catch (err) {
        if (err?.status !== 404) throw err;
        known = false;  // deleted meanwhile: look for it in the list again
        listedAt = 0;
      }
    }
    const now = Date.now();
    const retries = queueInfo?.config?.retryEnabled !== false;
    if (listedAt && (now - listedAt < LIST_EVERY_MS || !retries)) return;
    listedAt = now;
    const listed = await api.get(`${apiPath(domain)}/queues`, {signal: signalNow});
    info = listed.queues.find((q) => q.name === dlqName) || null;
    known = info !== null;
  }

  async function showPage(more) {
    if (browsing || !info) return;
    browsing = true;
    browse.disabled = true;
    try {
      const after = more && shown.length ? shown[shown.length - 1].position
        : info.firstPosition - 1;
      const got = await readStored(domain, dlqName, {after, until: info.lastPosition,
                                                     max: PAGE, signal});
      shown = more ? shown.concat(got) : got;
      messages.update(shown);
      const last = shown.length ? shown[shown.length - 1].position : after;
      const next = last < info.lastPosition ? h("button", {
        type: "button", class: "button button-quiet more dlq-more",
        onclick: () => showPage(true)}, `Read the next ${PAGE}`) : null;
      mount(list, h("p", {class: "chart-note"}, `${fmtNumber(shown.length)} read from the `
        + "queue's event stream, oldest first; reading consumes nothing."), messages.el, next);
      list.dataset.shown = String(shown.length);
    } catch (err) {
      if (err?.name !== "AbortError") mount(errors, errorNotice(err));
    } finally {
      browsing = false;
      browse.disabled = false;
    }
  }
  browse.addEventListener("click", () => showPage(false));

  const out = {
    el,
    /** Look at {q}.dlq again (the page's poll calls this). */
    async refresh(signalNow = signal) {
      await look(signalNow);
      drawSummary();
      mount(errors);
    },
  };
  drawSummary();
  return out;
}
