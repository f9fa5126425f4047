// The retained messages of a queue, read without consuming them: the API has no browse route,
// but its Server-Sent Events stream replays what a queue holds after a position
// (`GET Q/stream?from=<position>`, docs/API.md "Real-time") before going live. A page here is
// that replay, read until PAGE messages came, or the queue's last position (as of the read)
// was reached, then closed; no consumer group is made or moved, nothing is acknowledged.
//
// The stream is read with fetch() rather than EventSource, so the token goes in the
// Authorization header (not the URL) and a read ends when this says, with no reconnection.

import {ApiError, apiPath, isAbort, session} from "../api.js";
import {errorNotice, notice} from "../components.js";
import {fmtNumber, h, mount} from "../dom.js";
import {expandOnClick, messageList, messageRow} from "./queue-parts.js";

const PAGE = 50;
const IDLE_MS = 5000;  // nothing more came for this long: the rest expired meanwhile

/** Up to `count` stored messages from position `from` to `until`, oldest first. */
export async function readRetained(domain, queue, {from, until, count = PAGE, signal}) {
  const controller = new AbortController();
  const stop = () => controller.abort();
  signal?.addEventListener("abort", stop);
  const headers = {Accept: "text/event-stream"};
  const token = session.authentication ? session.current()?.token : null;
  if (token) headers.Authorization = `Bearer ${token}`;
  const out = [];
  let idle = 0;
  try {
    let response;
    try {
      response = await fetch(`${apiPath(domain, queue)}/stream?from=${Math.max(0, from - 1)}`,
                             {headers, signal: controller.signal, cache: "no-store"});
    } catch (err) {
      if (isAbort(err)) throw err;
      throw new ApiError(0, "unreachable", `cannot reach the broker (${err.message})`);
    }
    if (!response.ok) {
      const data = await response.json().catch(() => null);
      throw new ApiError(response.status, data?.error || `http_${response.status}`,
                         data?.message || `the stream answered ${response.status}`, data);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let text = "";
    const arm = () => { clearTimeout(idle); idle = setTimeout(stop, IDLE_MS); };
    arm();
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (isAbort(err) && !signal?.aborted) break;  // idle: the replay is over
        throw err;
      }
      if (chunk.done) break;
      arm();
      text += decoder.decode(chunk.value, {stream: true});
      const events = text.split("\n\n");
      text = events.pop();
      for (const event of events) {
        let type = "message", data = "";
        for (const line of event.split("\n")) {
          if (line.startsWith("event:")) type = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (type === "end") return out;
        if (type !== "message" || !data) continue;
        const msg = JSON.parse(data);
        if (msg.position < from) continue;
        if (msg.position > until) return out;
        out.push(msg);
        if (out.length >= count || msg.position >= until) return out;
      }
    }
    return out;
  } finally {
    clearTimeout(idle);
    signal?.removeEventListener("abort", stop);
    controller.abort();  // the stream would go on live: close it
  }
}

/**
 * The "retained messages" panel. current(): the queue as GET Q answers now (for its first
 * and last positions).
 */
export function retainedView({domain, queue, signal, current}) {
  const fromInput = h("input", {type: "number", min: 1, step: 1, class: "browse-from",
                                "aria-label": "from position"});
  const list = messageList();
  const body = list.body;
  const result = h("div");
  const nextButton = h("button", {type: "button", class: "button button-quiet", hidden: true,
                                  id: "browse-next"}, `Next ${PAGE}`);
  const el = h("div", {class: "browse", dataset: {state: "idle"}},
    h("form", {class: "browse-controls", onsubmit: (e) => { e.preventDefault(); show(); }},
      h("label", {class: "picker"}, h("span", null, "From position"), fromInput),
      h("button", {type: "submit", class: "button", id: "browse-show"}, "Show"),
      h("button", {type: "button", class: "button button-quiet", id: "browse-oldest",
                   onclick: () => show("oldest")}, "Oldest"),
      h("button", {type: "button", class: "button button-quiet", id: "browse-newest",
                   onclick: () => show("newest")}, "Newest")),
    h("p", {class: "field-help"}, "Read from the queue's stream replay: nothing is consumed "
      + "or acknowledged, no consumer group is made."),
    result, nextButton);
  expandOnClick(body);
  let next = null;
  nextButton.addEventListener("click", () => show(next));

  async function show(where = null) {
    el.dataset.state = "loading";
    mount(result, h("p", {class: "empty"}, "reading…"));
    try {
      const info = await current();
      const first = info.firstPosition, last = info.lastPosition;
      let from = where === "oldest" ? first : where === "newest" ? Math.max(first, last - PAGE + 1)
        : typeof where === "number" ? where : Number(fromInput.value) || first;
      from = Math.max(from, first);
      fromInput.value = String(from);
      if (first > last || from > last) {
        mount(result, notice("info", first > last ? "The queue holds no message."
          : `Nothing after position ${fmtNumber(last)} yet.`));
        nextButton.hidden = true;
        el.dataset.state = "done";
        el.dataset.count = "0";
        return;
      }
      const messages = await readRetained(domain, queue, {from, until: last, signal});
      body.replaceChildren(...messages.map((m) => messageRow(m)));
      const shownLast = messages.length ? messages[messages.length - 1].position : from;
      mount(result, messages.length
        ? list.el
        : notice("info", "No message is retained there any more (expired or evicted)."),
        h("p", {class: "browse-status field-help"}, messages.length
          ? `positions ${fmtNumber(messages[0].position)}–${fmtNumber(shownLast)} of `
            + `${fmtNumber(first)}–${fmtNumber(last)} retained` : ""));
      next = shownLast + 1;
      nextButton.hidden = shownLast >= last || !messages.length;
      el.dataset.count = String(messages.length);
      el.dataset.first = String(messages[0]?.position ?? "");
      el.dataset.state = "done";
    } catch (err) {
      if (isAbort(err) || signal.aborted) return;
      mount(result, errorNotice(err));
      el.dataset.state = "error";
    }
  }

  return {el, show};
}
