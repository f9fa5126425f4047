// The live view of a queue: a WebSocket observer (/api/ws/domains/{d}/queues/{q}?batch=true,
// with ?token= when authentication is on; docs/API.md "Real-time") showing the newest
// messages as they are published.
//
// Built to stay responsive at thousands of messages a second: frames only append to a bounded
// buffer (the newest KEEP messages) and ask for an animation frame (at most every
// MIN_DRAW_MS); each frame draws at most ROWS new rows at the top and drops the oldest past
// ROWS, so the DOM never holds more than
// ROWS rows and no frame redraws the whole list (only a filter change or a resume does,
// once). Paused, nothing is drawn: arrivals are counted and kept (the newest KEEP), and shown
// on resume. The server's `lagged` frames (messages it dropped because this client fell
// behind) are added up and shown; a socket that closes is reopened with a growing delay,
// except when the queue is gone or the credential refused, and messages published while it
// was closed are counted from the positions.
//
// The element's data-* attributes (state, received, dropped, missed, rows, paused-count)
// follow what is shown, for the tests.

import {session} from "../api.js";
import {badge} from "../components.js";
import {fmtNumber, h, mount} from "../dom.js";
import {expandOnClick, messageList, messageRow} from "./queue-parts.js";

const ROWS = 200;  // rows in the DOM at most
const KEEP = 1000;  // messages kept for a filter change, a resume
// At most this often, the list grows: ten updates a second are as many as anyone reads, and
// each costs the browser a layout of the list, however few rows came.
const MIN_DRAW_MS = 100;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
// Closes that reopening cannot mend: a bad path, no or a refused credential, no such queue,
// the queue deleted (docs/API.md, close codes).
const FINAL = new Set([4400, 4401, 4403, 4404, 4410]);
const STATES = {connecting: "info", live: "ok", reconnecting: "warning", closed: "critical"};

export function socketUrl(domain, queue) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams({batch: "true"});
  const token = session.authentication ? session.current()?.token : null;
  if (token) query.set("token", token);  // a browser's WebSocket cannot send headers
  return `${scheme}//${location.host}/api/ws/domains/${encodeURIComponent(domain)}`
    + `/queues/${encodeURIComponent(queue)}?${query}`;
}

/** A message's text for the filter: id, headers and payload, lower-cased, computed once. */
function haystack(msg) {
  if (msg.text === undefined) {
    msg.compact = JSON.stringify(msg.payload);
    msg.text = `${msg.id}\n${JSON.stringify(msg.headers)}\n${msg.compact}`.toLowerCase();
  }
  return msg.text;
}

export function liveView({domain, queue, signal}) {
  let socket = null, attempt = 0, retryTimer = 0, frame = 0, drawTimer = 0, lastDraw = 0;
  let paused = false;
  let filter = "", state = "connecting", reason = "";
  let received = 0, dropped = 0, missed = 0, pausedCount = 0, rows = 0;
  let lastPosition = null, startPosition = null, lastRate = 0, rateBase = 0;
  let buffer = [];  // newest last; trimmed to KEEP now and then
  let pending = [];  // arrived since the last frame (not paused)

  // --- the frame --------------------------------------------------------------------------
  const stateBadge = h("span", {class: "live-state"});
  const stateText = h("span", {class: "live-state-text"});
  const counts = h("span", {class: "live-counts"});
  const lagged = h("span", {class: "live-lagged", hidden: true, role: "status"});
  const pausedNote = h("span", {class: "live-paused", hidden: true});
  const pauseButton = h("button", {type: "button", class: "button", id: "live-pause",
                                   "aria-pressed": "false"}, "Pause");
  const reconnectButton = h("button", {type: "button", class: "button button-quiet",
                                       hidden: true}, "Reconnect now");
  const clearButton = h("button", {type: "button", class: "button button-quiet"}, "Clear");
  const filterInput = h("input", {type: "search", class: "live-filter", id: "live-filter",
                                  placeholder: "Filter: text in payload, headers or id",
                                  "aria-label": "filter the live messages"});
  const list = messageList({class: "live-rows"});
  const body = list.body;
  const empty = h("p", {class: "empty live-empty"}, "Waiting for messages…");
  const el = h("div", {class: "live-view", dataset: {state}},
    h("div", {class: "live-bar"}, stateBadge, stateText, counts, lagged, pausedNote),
    h("div", {class: "live-controls"}, pauseButton, filterInput, clearButton, reconnectButton),
    list.el,
    empty);
  expandOnClick(body);

  function setState(next, why = "") {
    state = next;
    reason = why;
    el.dataset.state = next;
    mount(stateBadge, badge(next, STATES[next]));
    stateText.textContent = why;
    reconnectButton.hidden = next !== "reconnecting" && next !== "closed";
  }

  // --- drawing (in animation frames) ------------------------------------------------------
  function schedule() {
    if (frame || drawTimer) return;
    const wait = lastDraw + MIN_DRAW_MS - performance.now();
    if (wait <= 0) frame = requestAnimationFrame(draw);
    else drawTimer = setTimeout(() => { drawTimer = 0; frame = requestAnimationFrame(draw); }, wait);
  }

  function matching(list, limit) {
    // the newest `limit` messages of `list` that pass the filter, newest first
    const out = [];
    for (let i = list.length - 1; i >= 0 && out.length < limit; i--) {
      if (!filter || haystack(list[i]).includes(filter)) out.push(list[i]);
    }
    return out;
  }

  function addRows(newestFirst) {
    if (!newestFirst.length) return;
    const fragment = document.createDocumentFragment();
    for (const msg of newestFirst) fragment.append(messageRow(msg, msg.compact));
    body.prepend(fragment);
    rows += newestFirst.length;
    if (rows > ROWS) {  // the oldest go, in one removal
      const range = document.createRange();
      range.setStartBefore(body.children[ROWS]);
      range.setEndAfter(body.lastElementChild);
      range.deleteContents();
      rows = ROWS;
    }
  }

  function redraw() {
    body.replaceChildren();
    rows = 0;
    pending = [];
    addRows(matching(buffer, ROWS));
  }

  function draw() {
    cancelAnimationFrame(frame);  // when called directly (a click), not from the frame
    frame = 0;
    lastDraw = performance.now();
    if (!paused && pending.length) {
      const batch = pending;
      pending = [];
      addRows(matching(batch, ROWS));
    }
    counts.textContent = `${fmtNumber(received)} received · ${fmtNumber(lastRate)}/s`
      + (startPosition !== null ? ` · live from position ${fmtNumber(startPosition)}` : "");
    lagged.hidden = dropped === 0;
    lagged.textContent = `lagged: ${fmtNumber(dropped)} dropped by the server`;
    pausedNote.hidden = !paused;
    pausedNote.textContent = `paused: ${fmtNumber(pausedCount)} new`;
    empty.hidden = rows > 0;
    empty.textContent = filter && buffer.length ? "No message matches the filter."
      : "Waiting for messages…";
    Object.assign(el.dataset, {received, dropped, missed, rows, pausedCount});
  }

  // --- messages ---------------------------------------------------------------------------
  function add(msg) {
    received += 1;
    lastPosition = msg.position;
    buffer.push(msg);
    if (buffer.length > 2 * KEEP) buffer = buffer.slice(-KEEP);  // amortised: one copy per KEEP
    if (paused) pausedCount += 1;
    else {
      pending.push(msg);
      if (pending.length > 2 * ROWS) pending = pending.slice(-ROWS);
    }
  }

  function onFrame(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    if (data.type === "messages") data.messages.forEach(add);
    else if (data.type === "message") add(data);
    else if (data.type === "lagged") dropped += data.dropped;
    else if (data.type === "connected") {
      attempt = 0;
      if (lastPosition !== null && data.position > lastPosition + 1) {
        missed += data.position - lastPosition - 1;  // published while the socket was closed
      }
      lastPosition = data.position - 1;
      startPosition ??= data.position;
      setState("live", missed ? `${fmtNumber(missed)} published while disconnected are not `
                                + "shown (see the retained messages)" : "");
    } else if (data.type === "error") {
      setState(state, `${data.error}: ${data.message}`);
    }
    schedule();
  }

  // --- the socket -------------------------------------------------------------------------
  function connect() {
    clearTimeout(retryTimer);
    if (signal.aborted) return;
    setState(attempt ? "reconnecting" : "connecting", attempt ? "connecting…" : "");
    socket = new WebSocket(socketUrl(domain, queue));
    socket.addEventListener("message", onFrame);
    socket.addEventListener("close", (event) => {
      socket = null;
      if (signal.aborted) return;
      if (FINAL.has(event.code)) {
        setState("closed", `${event.reason || "closed"} (${event.code})`);
        return;
      }
      const wait = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
      attempt += 1;
      setState("reconnecting", `closed (${event.code}${event.reason ? `: ${event.reason}` : ""}); `
               + `trying again in ${wait / 1000} s`);
      retryTimer = setTimeout(connect, wait * (0.8 + Math.random() * 0.4));
    });
  }

  // --- controls ---------------------------------------------------------------------------
  pauseButton.addEventListener("click", () => {
    paused = !paused;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    pauseButton.setAttribute("aria-pressed", String(paused));
    el.dataset.paused = String(paused);
    if (!paused) {
      pausedCount = 0;
      redraw();
    }
    draw();
  });
  let filterTimer = 0;
  filterInput.addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      filter = filterInput.value.trim().toLowerCase();
      el.dataset.filter = filter;
      if (!paused) redraw();
      draw();
    }, 150);
  });
  clearButton.addEventListener("click", () => {
    buffer = [];
    redraw();
    draw();
  });
  reconnectButton.addEventListener("click", () => {
    socket?.close();
    attempt = Math.max(attempt, 1);
    connect();
  });
  const rate = setInterval(() => {
    lastRate = received - rateBase;
    rateBase = received;
    schedule();
  }, 1000);
  signal.addEventListener("abort", () => {
    clearInterval(rate);
    clearTimeout(retryTimer);
    clearTimeout(filterTimer);
    clearTimeout(drawTimer);
    cancelAnimationFrame(frame);
    socket?.close(1000, "page left");
  });

  setState("connecting");
  draw();
  connect();
  return {el, get state() { return state; }, get reason() { return reason; }};
}
