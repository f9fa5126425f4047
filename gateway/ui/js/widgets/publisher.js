// Publishing to a queue from the browser: a JSON editor for the payload (an object publishes
// one message, POST Q/messages; an array of objects a batch, POST Q/messages/batch), headers
// as name/value rows (sent as X-Header-<name>), an optional message id, Idempotency-Key, and
// Delay or Deliver-At. The server's refusals are shown where they apply: a schema violation
// (422) or a body too large (413) at the payload, a bad header at its field; what was
// published (ids, positions, a duplicate) is listed under the form.

import {api, apiPath} from "../api.js";
import {form, jsonEditor} from "../components.js";
import {fmtNumber, fmtTime, h, mount} from "../dom.js";

const MAX_HEADERS = 64;  // X-Header-* per message (docs/API.md, limits)
const SHOWN_RESULTS = 8;
const SHOWN_IDS = 5;
// An HTTP header name (RFC 9110 token), and a value fetch() can send: visible Latin-1 text,
// spaces and tabs, no line break.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\xa0-\xff]*$/;

const EXAMPLE = {string: "", number: 0, boolean: false, object: {}, array: []};

/** A payload to start from: the schema's fields (Go form or JSON Schema properties). */
export function template(schema) {
  const fields = schema?.fields || schema?.Fields;
  if (fields) {
    return Object.fromEntries(Object.entries(fields).map(([k, t]) => [k, EXAMPLE[t] ?? null]));
  }
  if (schema?.properties) {
    return Object.fromEntries(Object.entries(schema.properties).map(([k, p]) => [
      k, p.enum ? p.enum[0] : p.const ?? EXAMPLE[Array.isArray(p.type) ? p.type[0] : p.type] ?? null]));
  }
  return {hello: "world"};
}

/** Headers as name/value rows, a field for form(): value() is [[name, value], ...]. */
function headerRows() {
  const list = h("div", {class: "header-rows"});
  const error = h("div", {class: "field-error", hidden: true});
  const add = h("button", {type: "button", class: "button button-quiet button-small",
                           id: "add-header"}, "Add header");

  function row(name = "", value = "") {
    const item = h("div", {class: "header-row"},
      h("input", {type: "text", class: "header-name", placeholder: "name",
                  "aria-label": "header name", value: name}),
      h("input", {type: "text", class: "header-value", placeholder: "value",
                  "aria-label": "header value", value}),
      h("button", {type: "button", class: "button button-quiet button-small",
                   "aria-label": "remove this header", onclick: () => item.remove()}, "×"));
    list.append(item);
    return item;
  }
  add.addEventListener("click", () => row().querySelector("input").focus());

  const out = {
    name: "headers",
    input: add,
    el: h("div", {class: "field", dataset: {field: "headers"}},
          h("label", null, "Headers"), list, h("div", null, add),
          h("div", {class: "field-help"}, "Kept with the message, names lower-cased "
            + "(sent as X-Header-<name>); a batch's headers go with each of its messages."),
          error),
    value() {
      return [...list.children].map((item) => [item.querySelector(".header-name").value.trim(),
                                               item.querySelector(".header-value").value])
        .filter(([k, v]) => k || v);
    },
    setError(message) {
      error.textContent = message || "";
      error.hidden = !message;
    },
    check() {
      const seen = new Set();
      let message = null;
      const pairs = out.value();
      if (pairs.length > MAX_HEADERS) message = `at most ${MAX_HEADERS} headers per message`;
      for (const [k, v] of pairs) {
        if (message) break;
        if (!TOKEN.test(k)) message = `header name “${k}” must be letters, digits or ! # $ % & ' * + . ^ _ \` | ~ -`;
        else if (!HEADER_VALUE.test(v)) message = `the value of “${k}” must be one line of Latin-1 text`;
        else if (seen.has(k.toLowerCase())) message = `header “${k}” is given twice`;
        seen.add(k.toLowerCase());
      }
      out.setError(message);
      return !message;
    },
  };
  return out;
}

/** Delay or Deliver-At, a field for form(): value() is {kind, value}. */
function deliveryField() {
  const kind = h("select", {"aria-label": "delivery", class: "delivery-kind"},
    h("option", {value: "now"}, "at once"),
    h("option", {value: "delay"}, "after a delay (Delay)"),
    h("option", {value: "at"}, "at a time (Deliver-At)"));
  const delay = h("input", {type: "text", class: "delivery-delay", placeholder: "30s, 5m, 1h30m",
                            "aria-label": "delay", hidden: true});
  const at = h("input", {type: "datetime-local", step: "1", class: "delivery-at",
                         "aria-label": "deliver at", hidden: true});
  const error = h("div", {class: "field-error", hidden: true});
  kind.addEventListener("change", () => {
    delay.hidden = kind.value !== "delay";
    at.hidden = kind.value !== "at";
  });
  const out = {
    name: "delivery",
    input: kind,
    el: h("div", {class: "field", dataset: {field: "delivery"}},
          h("label", null, "Delivery"), h("div", {class: "delivery"}, kind, delay, at),
          h("div", {class: "field-help"}, "Stored at once; consumer groups get it from then on."),
          error),
    value() {
      if (kind.value === "delay") return {kind: "delay", value: delay.value.trim()};
      if (kind.value === "at") return {kind: "at", value: at.value};
      return {kind: "now", value: ""};
    },
    setError(message) {
      error.textContent = message || "";
      error.hidden = !message;
    },
    check() {
      const v = out.value();
      let message = null;
      if (v.kind === "delay" && !v.value) message = "give the delay, such as 30s";
      if (v.kind === "at" && Number.isNaN(new Date(v.value).getTime())) message = "give the time";
      out.setError(message);
      return !message;
    },
  };
  return out;
}

/** Where an error the server gave belongs. */
function fieldFor(err) {
  const m = err.message || "";
  if (/^messages\[\d+\]/.test(m) || err.status === 413 ||
      ["schema_violation", "invalid_json", "payload_too_large"].includes(err.code)) return "payload";
  if (/Delay|Deliver-At/.test(m)) return "delivery";
  if (/Idempotency-Key/.test(m)) return "idempotencyKey";
  if (/X-Message-Id|message id/.test(m)) return "messageId";
  if (/X-Header/.test(m)) return "headers";
  return null;
}

/**
 * The publisher of domain/queue. schema: the domain's (for the first payload). onPublished()
 * after each success (the page refreshes its figures).
 */
export function publisher({domain, queue, schema, signal, onPublished = () => {}}) {
  const payload = jsonEditor({name: "payload", label: "Payload", value: template(schema),
    rows: 9, help: "A JSON object publishes one message; an array of objects, a batch "
      + "(all or nothing)."});
  const kindNote = h("div", {class: "publish-kind field-help"});
  payload.el.append(kindNote);
  const describe = () => {
    let value = null;
    try { value = JSON.parse(payload.text()); } catch { /* shown by the editor */ }
    kindNote.textContent = Array.isArray(value)
      ? `publishes a batch of ${fmtNumber(value.length)} messages`
      : value !== null && typeof value === "object" ? "publishes one message" : "";
  };
  payload.input.addEventListener("input", describe);
  describe();
  const key = {name: "idempotencyKey", label: "Idempotency-Key", autocomplete: "off",
               help: "optional: a repeat within the dedup window publishes nothing and "
                 + "answers with the first result",
               validate: (v) => (v.length > 256 ? "Idempotency-Key must have 1 to 256 characters"
                 : !HEADER_VALUE.test(v) ? "Idempotency-Key must be Latin-1 text" : null)};
  const results = h("ol", {class: "publish-results", id: "publish-results"});

  const made = form({
    fields: [
      payload, headerRows(),
      {name: "messageId", label: "Message id", autocomplete: "off",
       help: "optional, one message only (X-Message-Id); a batch's messages take their "
         + "\"id\" field", validate: (v) => (!HEADER_VALUE.test(v) ? "must be Latin-1 text" : null)},
      key, deliveryField(),
    ],
    submitLabel: "Publish",
    fieldFor,
    async onSubmit(values, self) {
      const value = payload.value();
      const batch = Array.isArray(value);
      const refuse = (name, message) => self.fields[name].setError(message);
      if (batch) {
        const bad = value.findIndex((m) => m === null || typeof m !== "object" || Array.isArray(m));
        if (!value.length) return refuse("payload", "a batch needs at least one message");
        if (bad >= 0) return refuse("payload", `messages[${bad}] must be a JSON object`);
        if (values.messageId) {
          return refuse("messageId", "a batch takes each message's id from its \"id\" field: "
                        + "leave this empty");
        }
      } else if (value === null || typeof value !== "object") {
        return refuse("payload", "a message must be a JSON object (or an array of them for a "
                      + "batch)");
      }
      const headers = {};
      for (const [k, v] of values.headers) headers[`X-Header-${k}`] = v;
      if (values.messageId) headers["X-Message-Id"] = values.messageId;
      if (values.idempotencyKey) headers["Idempotency-Key"] = values.idempotencyKey;
      const when = values.delivery;
      if (when.kind === "delay") headers.Delay = when.value;
      if (when.kind === "at") headers["Deliver-At"] = new Date(when.value).toISOString();
      const path = apiPath(domain, queue) + (batch ? "/messages/batch" : "/messages");
      // One message goes as typed (the API keeps a single publish's bytes as sent).
      const body = batch ? {messages: value} : payload.text();
      const answer = await api.post(path, body, {headers, signal});
      showResult(answer, batch, when);
      onPublished(answer);
    },
  });
  made.el.classList.add("publisher-form");
  // Idempotency keys are easiest made here: a button fills one in.
  const keyField = made.fields.idempotencyKey;
  keyField.input.after(h("button", {type: "button", class: "button button-quiet button-small",
    onclick: () => { keyField.input.value = crypto.randomUUID(); }}, "Generate"));

  function showResult(answer, batch, when) {
    const first = batch ? answer.firstPosition : answer.position;
    const last = batch ? answer.firstPosition + answer.count - 1 : answer.position;
    const ids = batch ? answer.messageIds : [answer.messageId];
    const positions = first === last ? `position ${fmtNumber(first)}`
      : `positions ${fmtNumber(first)}–${fmtNumber(last)}`;
    const item = h("li", {class: ["publish-result", answer.duplicate && "duplicate"],
                          dataset: {first: String(first), last: String(last),
                                    count: String(ids.length), ids: ids.join(" "),
                                    duplicate: String(Boolean(answer.duplicate))}},
      h("time", null, fmtTime(Date.now())),
      h("strong", null, answer.duplicate ? " Already published " : " Published "),
      `${fmtNumber(ids.length)} message${ids.length > 1 ? "s" : ""} at ${positions}`,
      answer.duplicate ? " (the Idempotency-Key was used before: nothing new was stored)" : "",
      when.kind !== "now" ? ` · held until ${when.kind === "delay" ? `${when.value} from now`
                                                                     : when.value}` : "",
      h("div", {class: "publish-ids"}, "id ", ids.slice(0, SHOWN_IDS).map((id) =>
        h("code", null, id)), ids.length > SHOWN_IDS
        ? ` and ${fmtNumber(ids.length - SHOWN_IDS)} more` : null));
    results.prepend(item);
    while (results.children.length > SHOWN_RESULTS) results.lastElementChild.remove();
  }

  const el = h("div", {class: "publisher"}, made.el, results);
  return {el, form: made, clearResults: () => mount(results)};
}
