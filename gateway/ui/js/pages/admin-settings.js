// Settings (/ui/admin/settings, admins): the config file the broker was started with, from
// GET /api/admin/settings, as a form of every key by section. Saving sends only the keys
// changed (PUT merges a partial tree); the reply says what was applied at once (the live keys)
// and what waits for a restart. Reset (POST .../reset) after a confirmation. Without a config
// file (GET's "file": null, or 409 no_config_file) the page says the broker was started
// without one and shows what it runs with, read-only. docs/API.md "Settings" has the rules.

import {api, ApiError} from "../api.js";
import {badge, confirmDialog, errorNotice, field, notice, pageHeader, section,
        toast} from "../components.js";
import {h, mount} from "../dom.js";
import {adminTabs} from "../widgets/admin-nav.js";

export const name = "admin-settings";
export const title = "Settings";

const CHOICES = {"general.logLevel": ["debug", "info", "warn", "error"],
                 "logging.format": ["plain", "json"]};
const REDACTED = "<redacted>";

/** {"http": {"port": 1}} -> [["http.port", 1]], lists and scalars as leaves. */
function leaves(tree, prefix = "") {
  const out = [];
  for (const [key, value] of Object.entries(tree || {})) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (value && typeof value === "object" && !Array.isArray(value)) out.push(...leaves(value, path));
    else out.push([path, value]);
  }
  return out;
}

function lookup(tree, path) {
  return path.split(".").reduce((node, key) => (node && typeof node === "object" ? node[key]
                                                                                   : undefined), tree);
}

function place(tree, path, value) {
  const keys = path.split(".");
  let node = tree;
  for (const key of keys.slice(0, -1)) node = node[key] ??= {};
  node[keys[keys.length - 1]] = value;
}

function envName(path) {
  return `GORTMS_${path.replaceAll(".", "_").toUpperCase()}`;
}

function shown(value) {
  return Array.isArray(value) ? value.join(", ") : String(value);
}

/** One key's input, typed as the broker's value is. */
function keyField(path, value, {inFile, effective, fromEnvironment, restart, readOnly}) {
  const notes = [];
  if (!inFile) notes.push("default (not in the file)");
  if (fromEnvironment) notes.push(`${envName(path)} sets it and wins: it runs with ${shown(effective)}`);
  else if (restart) notes.push(`waits for a restart (runs with ${shown(effective)})`);
  const spec = {name: path, label: path.split(".").slice(1).join(".") || path,
                help: notes.join("; ") || null};
  let kind;
  if (typeof value === "boolean") {
    kind = "boolean";
    Object.assign(spec, {type: "checkbox", value});
  } else if (typeof value === "number") {
    kind = "number";
    Object.assign(spec, {type: "number", value, step: "any",
                         validate: (v) => (v === null ? `${path} needs a value` : null)});
  } else if (Array.isArray(value)) {
    kind = "list";
    Object.assign(spec, {value: value.join(", "), help: [spec.help, "comma-separated"]
      .filter(Boolean).join("; ")});
  } else if (CHOICES[path]) {
    kind = "string";
    Object.assign(spec, {type: "select", value, options: CHOICES[path].map((c) => [c, c])});
  } else {
    kind = "string";
    Object.assign(spec, {type: value === REDACTED ? "password" : "text", value: value ?? ""});
  }
  const made = field(spec);
  made.input.disabled = readOnly;
  if (fromEnvironment) made.el.append(badge("environment", "warning"));
  if (restart) made.el.append(badge("restart pending", "warning"));
  const read = () => {
    const v = made.value();
    return kind === "list" ? String(v).split(",").map((s) => s.trim()).filter(Boolean) : v;
  };
  const initial = JSON.stringify(read());
  return {...made, kind, changed: () => JSON.stringify(read()) !== initial, read};
}

/** What the reply of a PUT or reset says was done. */
function outcome(reply, what) {
  const parts = [h("strong", null, `${what} ${reply.file}.`)];
  parts.push(h("div", {dataset: {applied: reply.applied.join(",")}}, reply.applied.length
    ? `Applied now, in every process: ${reply.applied.join(", ")}.` : "Nothing applied live."));
  parts.push(h("div", {dataset: {restart: reply.restartRequired.join(",")}},
    reply.restartNeeded ? `Waits for a restart of the broker: ${reply.restartRequired.join(", ")}.`
      : "Nothing waits for a restart."));
  for (const warning of reply.warnings || []) parts.push(h("div", null, warning));
  const el = notice(reply.restartNeeded ? "warning" : "ok", parts);
  el.id = "settings-outcome";
  return el;
}

export async function render(ctx) {
  const body = h("div", {id: "settings-body"});
  const result = h("div");
  ctx.root.append(pageHeader("Settings"), adminTabs("settings"), result, body);
  draw(await api.get("/api/admin/settings", {signal: ctx.signal}));

  function noFile(message = null) {
    const el = notice("warning", h("strong", null, "Started without a config file. "),
      message || "This broker runs on the embedded defaults and GORTMS_* variables, so there is "
        + "no file to change here. Start it with `gortms --config PATH` (`gortms "
        + "--generate-config --config PATH` writes one) to change settings from this page.");
    el.id = "no-config-file";
    return el;
  }

  function draw(reply) {
    const readOnly = reply.file === null;
    const tree = readOnly ? reply.effective : reply.settings;
    const environment = new Set(reply.environment);
    const restart = new Set(reply.restartRequired);
    const fields = leaves(reply.effective).map(([path, effective]) => {
      const inFile = !readOnly && lookup(tree, path) !== undefined;
      return keyField(path, inFile ? lookup(tree, path) : effective,
                      {inFile: inFile || readOnly, effective, readOnly,
                       fromEnvironment: environment.has(path), restart: restart.has(path)});
    });
    const bySection = new Map();
    for (const f of fields) {
      const top = f.name.split(".")[0];
      if (!bySection.has(top)) bySection.set(top, []);
      bySection.get(top).push(f);
    }
    const formError = h("div", {class: "form-error", role: "alert", hidden: true});
    const save = h("button", {type: "submit", class: "button button-primary"}, "Save changes");
    const reset = h("button", {type: "button", class: "button button-danger"}, "Reset to defaults…");
    const el = h("form", {class: "form settings-form", novalidate: true},
      h("div", {class: "settings-sections"}, [...bySection].map(([top, list]) =>
        h("fieldset", {class: "settings-section", dataset: {section: top}},
          h("legend", null, top), list.map((f) => f.el)))),
      formError, readOnly ? null : h("div", {class: "form-buttons settings-buttons"}, save, reset));

    function showError(err) {
      // "http.port: must be ...; shards.count: ..." : each problem at its key
      const rest = [];
      for (const problem of err.message.split("; ")) {
        const target = fields.filter((f) => problem.startsWith(`${f.name}:`) ||
                                            problem.startsWith(`${f.name} `))
          .sort((a, b) => b.name.length - a.name.length)[0];
        if (target) target.setError(problem);
        else rest.push(problem);
      }
      if (rest.length) {
        formError.replaceChildren(h("strong", null, rest.join("; ")),
          err instanceof ApiError ? h("code", {class: "error-code"}, err.code) : null);
        formError.hidden = false;
      }
      fields.find((f) => f.el.querySelector(".field-error:not([hidden])"))?.input.focus();
    }

    async function send(work, what) {
      fields.forEach((f) => f.setError(null));
      formError.hidden = true;
      save.disabled = reset.disabled = true;
      try {
        const answer = await work();
        draw(answer);
        mount(result, outcome(answer, what));
        toast(`${what} ${answer.file}`, "ok");
      } catch (err) {
        if (err?.name === "AbortError") return;
        if (err?.code === "no_config_file") mount(result, noFile(err.message));
        else showError(err);
      } finally {
        save.disabled = reset.disabled = false;
      }
    }

    el.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!fields.map((f) => f.check()).every(Boolean)) return;
      const change = {};
      for (const f of fields.filter((x) => x.changed())) place(change, f.name, f.read());
      if (!Object.keys(change).length) {
        mount(result, notice("info", "Nothing changed: no key differs from the file."));
        return;
      }
      send(() => api.put("/api/admin/settings", change, {signal: ctx.signal}), "Saved to");
    });
    reset.addEventListener("click", async () => {
      const ok = await confirmDialog({
        title: "Reset the config file to the defaults?",
        message: `${reply.file} is written anew with every key at its default, but the keys `
          + "data placement, identity and security depend on (nodeId, dataDir, shards.count, "
          + "the JWT secret, authentication, TLS), kept as the file has them. Comments of your "
          + "own are lost. Most keys take effect at the next restart.",
        confirmLabel: "Reset", typeToConfirm: "reset"});
      if (ok) send(() => api.post("/api/admin/settings/reset", {}, {signal: ctx.signal}), "Reset");
    });

    mount(body,
      readOnly ? noFile() : h("p", {class: "settings-file"}, "The config file ",
        h("code", {id: "settings-file"}, reply.file),
        ": saving changes only the keys you changed; a key the environment sets changes in the "
        + "file but not in effect."),
      reply.problems.length ? notice("error", h("strong", null, "A start would refuse the file "
        + "as it is: "), h("ul", null, reply.problems.map((p) => h("li", null, p)))) : null,
      !readOnly && reply.restartNeeded ? notice("warning", "Waiting for a restart: ",
        h("span", {id: "restart-required"}, reply.restartRequired.join(", ")), ".") : null,
      section(readOnly ? "What the broker runs with" : "The file's settings",
              {id: "settings"}, el));
  }
}
