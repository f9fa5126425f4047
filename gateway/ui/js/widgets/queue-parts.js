// Small pieces the domain and queue pages share: a queue's fill against its maxSize, a
// settings list, a JSON value shown as text, a clock time with milliseconds, and the
// dead-letter naming rule ({q}.dlq holds the dead letters of {q}).

import {fillLevel} from "../charts.js";
import {fmtNumber, fmtTime, h, svg} from "../dom.js";

export const DLQ_SUFFIX = ".dlq";

/** The queue whose dead letters `name` holds, or null ("orders.dlq" -> "orders"). */
export function dlqSource(name) {
  return name.endsWith(DLQ_SUFFIX) && name.length > DLQ_SUFFIX.length
    ? name.slice(0, -DLQ_SUFFIX.length) : null;
}

export function percentOf(count, max) {
  return max > 0 ? (100 * count) / max : 0;
}

/** A thin bar of count against max, coloured at the broker's alert levels (75 %, 90 %). */
export function fillMeter(count, max) {
  const percent = percentOf(count, max);
  const level = fillLevel(percent);
  return h("span", {class: "meter", dataset: {level, percent: percent.toFixed(1)}},
    svg("svg", {class: "meter-bar", viewBox: "0 0 100 8", preserveAspectRatio: "none",
                role: "img", "aria-label": `${fmtNumber(percent)} % of maxSize`},
        svg("rect", {class: "fill-track", x: 0, y: 0, width: 100, height: 8, rx: 2}),
        svg("rect", {class: `level-${level}`, x: 0, y: 0,
                     width: Math.max(0, Math.min(100, percent)), height: 8, rx: 2})),
    h("span", {class: "meter-text"}, `${fmtNumber(count)} / ${fmtNumber(max)}`));
}

/** A bar of `percent` across its container (a stat card's foot), coloured by level. */
export function fillStrip(percent) {
  const level = fillLevel(percent);
  return svg("svg", {class: "fill-strip", viewBox: "0 0 100 6", preserveAspectRatio: "none",
                     role: "img", "aria-label": `${fmtNumber(percent)} % full`},
             svg("rect", {class: "fill-track", x: 0, y: 0, width: 100, height: 6, rx: 2}),
             svg("rect", {class: `level-${level}`, x: 0, y: 0,
                          width: Math.max(0, Math.min(100, percent)), height: 6, rx: 2}));
}

/** [[label, value node|string, key?]] as a definition list; `key` becomes data-key. */
export function settingsList(pairs) {
  return h("dl", {class: "settings-list"}, pairs.map(([label, value, key]) =>
    h("div", {class: "setting", dataset: key ? {key} : {}},
      h("dt", null, label), h("dd", null, value))));
}

/** A queue's config as the API gives it, one line per setting, in the API's names. */
export function configList(config) {
  const retry = config.retryConfig, breaker = config.circuitBreakerConfig;
  const onOff = (v) => (v ? "on" : "off");
  return settingsList([
    ["isPersistent", onOff(config.isPersistent), "isPersistent"],
    ["maxSize", fmtNumber(config.maxSize), "maxSize"],
    ["ttl", config.ttl === "0" ? "none (0)" : config.ttl, "ttl"],
    ["retention", config.retention, "retention"],
    ["ackTimeout", config.ackTimeout, "ackTimeout"],
    ["workerCount", String(config.workerCount), "workerCount"],
    ["retryEnabled", onOff(config.retryEnabled), "retryEnabled"],
    ["retryConfig", `maxRetries ${retry.maxRetries}, initialDelay ${retry.initialDelay}, `
      + `factor ${retry.factor}, maxDelay ${retry.maxDelay}`, "retryConfig"],
    ["circuitBreakerEnabled", onOff(config.circuitBreakerEnabled), "circuitBreakerEnabled"],
    ["circuitBreakerConfig", `errorThreshold ${breaker.errorThreshold}, successThreshold `
      + `${breaker.successThreshold}, minimumRequests ${breaker.minimumRequests}, `
      + `openTimeout ${breaker.openTimeout}`, "circuitBreakerConfig"],
  ]);
}

/** A JSON value as indented text (always text: never parsed as HTML). */
export function jsonBlock(value, props = {}) {
  return h("pre", {...props, class: ["json", props.class]}, JSON.stringify(value, null, 2));
}

/** "14:03:07.123": a message's time, to the millisecond. */
export function fmtClock(timestamp) {
  const d = new Date(timestamp);
  if (Number.isNaN(d.getTime())) return String(timestamp ?? "");
  return `${fmtTime(d)}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

/** A message's headers as "name: value" chips. */
export function headerChips(headers) {
  const entries = Object.entries(headers || {});
  if (!entries.length) return null;
  return entries.map(([k, v]) => h("span", {class: "chip"}, `${k}: ${v}`));
}

// --- message rows (the live view and the retained messages) -------------------------------------
//
// Rows are divs in a CSS grid of fixed columns, each a handful of text nodes: the live view
// adds up to a hundred of them ten times a second, and their layout must not depend on the
// others' (as a table's columns do).

const PREVIEW_CHARS = 240;  // of a payload's compact JSON in a row; the whole on a click
const rowMessages = new WeakMap();  // row -> its message, for expanding it

/** A list of messages: {el, body}; rows go in `body`. */
export function messageList(props = {}) {
  const body = h("div", {class: "message-body", role: "rowgroup"});
  const head = h("div", {class: "message-head", role: "row"},
    ["Position", "Time", "Id", "Headers", "Payload"].map((label) =>
      h("span", {class: "cell", role: "columnheader"}, label)));
  return {el: h("div", {...props, class: ["messages", props.class], role: "table"}, head, body),
          body};
}

function preview(compact) {
  return compact.length > PREVIEW_CHARS ? compact.slice(0, PREVIEW_CHARS) + "…" : compact;
}

/** One message as a row: position, time, id, headers, the payload's first characters.
 * `text`: the payload's compact JSON when the caller has it already. */
export function messageRow(msg, text = null) {
  const row = h("div", {class: "message-row", role: "row",
                        dataset: {position: String(msg.position)}},
    h("span", {class: "cell cell-position", role: "cell"}, String(msg.position)),
    h("span", {class: "cell cell-time", role: "cell", title: msg.timestamp},
      fmtClock(msg.timestamp)),
    h("span", {class: "cell cell-id", role: "cell"}, msg.id),
    h("span", {class: "cell cell-headers", role: "cell"}, headerChips(msg.headers)),
    h("span", {class: "cell cell-payload", role: "cell"},
      preview(text ?? JSON.stringify(msg.payload))));
  rowMessages.set(row, msg);
  return row;
}

/** Clicking a row of `body` shows its whole payload, indented; clicking again folds it. */
export function expandOnClick(body) {
  body.addEventListener("click", (event) => {
    const row = event.target.closest(".message-row");
    const msg = row && rowMessages.get(row);
    if (!msg || window.getSelection()?.toString()) return;  // selecting text is not a click
    const open = row.classList.toggle("open");
    row.querySelector(".cell-payload").replaceChildren(
      open ? jsonBlock(msg.payload) : preview(JSON.stringify(msg.payload)));
  });
}
