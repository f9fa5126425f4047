// The forms that make domains and queues: the optional schema of a domain, and a queue with
// every setting of its config (gortms/models.py QueueConfig, RetryConfig,
// CircuitBreakerConfig) prefilled with the server's defaults, so what is shown is what is
// created. Each field is named by the setting's path in the API ("config.retryConfig.factor"),
// so the server's "config.retryConfig.factor must be a number >= 1.0" lands at that field.

import {api, apiPath} from "../api.js";
import {form, jsonEditor} from "../components.js";
import {h} from "../dom.js";

// The defaults of gortms/models.py. tests/ui/test_domains.py checks them against a queue the
// server creates without a config, so a change there cannot leave this form showing old ones.
export const QUEUE_DEFAULTS = {
  isPersistent: true, maxSize: 1000, ttl: "24h", workerCount: 2, retryEnabled: false,
  retryConfig: {maxRetries: 3, initialDelay: "1s", factor: 2.0, maxDelay: "30s"},
  circuitBreakerEnabled: false,
  circuitBreakerConfig: {errorThreshold: 0.5, successThreshold: 5, minimumRequests: 10,
                         openTimeout: "30s"},
  ackTimeout: "30s", retention: "limits",
};
const MAX_QUEUE_SIZE = 2 ** 40;

// Go-style durations as the server reads them (gortms/checks.py): "500ms", "1h30m", "0".
const DURATION = /^(0|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))*)$/;

function duration(label, {positive = false} = {}) {
  return (v) => {
    if (!DURATION.test(v.trim())) return `${label} must be a duration like "500ms", "30s", "1h30m"`
      + (positive ? "" : ` or "0"`);
    if (positive && /^[0.]+[a-zµ]*$/.test(v.trim())) return `${label} must be longer than 0`;
    return null;
  };
}

function range(label, low, high, {integer = true} = {}) {
  return (v) => {
    if (v === null || Number.isNaN(v)) return `${label} is required`;
    if (integer && !Number.isInteger(v)) return `${label} must be an integer`;
    if (v < low || v > high) return `${label} must be between ${low} and ${high}`;
    return null;
  };
}

const shown = (v) => (typeof v === "boolean" ? (v ? "on" : "off") : String(v));

/** One setting: its path, label, kind and rule; the default from QUEUE_DEFAULTS. */
function setting(path, label, kind, help, extra = {}) {
  const keys = path.split(".");
  const fallback = keys.reduce((o, k) => o[k], QUEUE_DEFAULTS);
  const spec = {name: `config.${path}`, label, value: fallback, ...extra,
                help: [`default ${shown(fallback)}`, help].filter(Boolean).join(" · ")};
  if (kind === "duration") {
    spec.required = true;
    spec.validate ??= duration(path.split(".").pop());
  } else if (kind === "checkbox") {
    spec.type = "checkbox";
  } else if (kind === "select") {
    spec.type = "select";
  } else {
    spec.type = "number";
    spec.required = true;
  }
  return {spec, keys, fallback};
}

const SETTINGS = [
  ["Storage", [
    setting("maxSize", "Max size (messages)", "number",
            "past it, a publish evicts what every group acknowledged, else 429 queue_full",
            {min: 1, max: MAX_QUEUE_SIZE, step: 1, validate: range("maxSize", 1, MAX_QUEUE_SIZE)}),
    setting("ttl", "Message TTL", "duration", "older messages are deleted, delivered or not; 0: never"),
    setting("retention", "Retention", "select",
            "interest: a message also goes once every group acknowledged it",
            {options: [["limits", "limits (maxSize and ttl)"],
                       ["interest", "interest (also when every group acknowledged)"]]}),
    setting("isPersistent", "Persistent", "checkbox",
            "off: written without the write-ahead log, fast but lost if the shard crashes"),
  ]],
  ["Delivery", [
    setting("ackTimeout", "Ack timeout", "duration",
            "a delivery's lease; not acknowledged by then, it counts as failed",
            {validate: duration("ackTimeout", {positive: true})}),
    setting("workerCount", "Worker count", "number",
            "accepted and kept: there are no push subscriptions yet",
            {min: 1, max: 1024, step: 1, validate: range("workerCount", 1, 1024)}),
  ]],
  ["Retries and dead letters", [
    setting("retryEnabled", "Retry failed deliveries", "checkbox",
            "failures are retried with backoff, then dead-lettered to <queue>.dlq; "
            + "off: due again at once, without limit"),
    setting("retryConfig.maxRetries", "Max retries", "number", null,
            {min: 0, max: 1000, step: 1, validate: range("maxRetries", 0, 1000)}),
    setting("retryConfig.initialDelay", "Initial delay", "duration", "the first retry's wait"),
    setting("retryConfig.factor", "Backoff factor", "number", "retry n waits initialDelay × factor^(n-1)",
            {min: 1, max: 100, step: "any", validate: range("factor", 1, 100, {integer: false})}),
    setting("retryConfig.maxDelay", "Max delay", "duration", "the longest wait"),
  ]],
  ["Circuit breaker", [
    setting("circuitBreakerEnabled", "Circuit breaker", "checkbox",
            "one per consumer group: open after too many failures, deliveries pause"),
    setting("circuitBreakerConfig.errorThreshold", "Error threshold", "number",
            "the failed fraction (0-1) that opens it",
            {min: 0, max: 1, step: "any", validate: range("errorThreshold", 0, 1, {integer: false})}),
    setting("circuitBreakerConfig.successThreshold", "Success threshold", "number",
            "successes in half-open that close it",
            {min: 1, max: 1000000, step: 1, validate: range("successThreshold", 1, 1000000)}),
    setting("circuitBreakerConfig.minimumRequests", "Minimum requests", "number",
            "outcomes counted before it may open",
            {min: 1, max: 1000000, step: 1, validate: range("minimumRequests", 1, 1000000)}),
    setting("circuitBreakerConfig.openTimeout", "Open timeout", "duration",
            "how long it stays open before trying again",
            {validate: duration("openTimeout", {positive: true})}),
  ]],
];

/** The form's values -> the config object the API takes (every setting, nested). */
export function configFrom(values) {
  const config = {};
  for (const [, settings] of SETTINGS) {
    for (const {spec, keys} of settings) {
      let value = values[spec.name];
      if (typeof value === "string") value = value.trim();
      let into = config;
      for (const key of keys.slice(0, -1)) into = into[key] ??= {};
      into[keys[keys.length - 1]] = value;
    }
  }
  return config;
}

/**
 * The queue creation form for `domain`: name and every setting, grouped, with a button to
 * put the defaults back. onCreated(answer) gets the API's 201 answer.
 */
export function queueForm({domain, signal, onCreated}) {
  const fields = [{name: "name", label: "Queue name", required: true, autocomplete: "off",
                   help: "1-128 characters of A-Z a-z 0-9 . _ : -"}];
  for (const [, settings] of SETTINGS) fields.push(...settings.map((s) => s.spec));
  const reset = h("button", {type: "button", class: "button button-quiet"}, "Reset to defaults");
  const made = form({
    fields,
    submitLabel: "Create queue",
    secondary: reset,
    fieldFor: (err) => (["invalid_name", "queue_exists"].includes(err.code) ||
                        (err.code === "invalid_parameter" && /\bname\b/.test(err.message))
      ? "name" : null),
    async onSubmit(values) {
      const answer = await api.post(apiPath(domain) + "/queues",
                                    {name: values.name.trim(), config: configFrom(values)},
                                    {signal});
      await onCreated(answer);
    },
  });
  // Group the settings' fields in fieldsets, before the form's error line and buttons.
  const groups = h("div", {class: "settings-groups"});
  for (const [legend, settings] of SETTINGS) {
    const set = h("fieldset", {class: "settings-group"}, h("legend", null, legend));
    for (const {spec} of settings) set.append(made.fields[spec.name].el);
    groups.append(set);
  }
  made.el.insertBefore(groups, made.el.querySelector(".form-error"));
  made.el.classList.add("queue-form");
  reset.addEventListener("click", () => {
    for (const [, settings] of SETTINGS) {
      for (const {spec, fallback} of settings) {
        const input = made.fields[spec.name].input;
        if (spec.type === "checkbox") input.checked = fallback;
        else input.value = String(fallback);
      }
    }
    made.clearErrors();
  });
  return made;
}

// --- the domain's schema -----------------------------------------------------------------------

/**
 * A domain's schema: optional JSON (empty: no schema), its parse error shown as one types.
 * A field for form(): value() is the parsed object or null.
 */
export function schemaField() {
  return jsonEditor({name: "schema", label: "Schema (optional)", value: "", rows: 8,
    optional: true, placeholder: '{"fields": {"order_id": "string", "amount": "number"}}',
    help: h("span", null, "Empty: any JSON object is accepted. The Go form ",
            h("code", null, '{"fields": {"name": "string"}}'),
            " (string, number, boolean, object, array), or a JSON Schema (Draft 2020-12 "
            + "unless its $schema says otherwise). It cannot be changed later.")});
}
