// Small pieces every page reuses, each a function returning DOM (see docs/UI.md):
//   pageHeader, section, statCard, badge, notice, errorNotice, notAvailable, toast,
//   table, field, form, jsonEditor, confirmDialog.

import {ApiError} from "./api.js";
import {h, mount} from "./dom.js";

// --- layout pieces --------------------------------------------------------------------------

/** The page's <h1> and, on the right, its actions (buttons, pickers). */
export function pageHeader(title, ...actions) {
  return h("div", {class: "page-header"}, h("h1", null, title),
           h("div", {class: "page-actions"}, actions));
}

/** A titled panel; options: {actions: [nodes], class, id}. */
export function section(title, options, ...children) {
  const {actions = [], ...props} = options || {};
  return h("section", {...props, class: ["panel", props.class]},
           h("div", {class: "panel-header"}, h("h2", null, title),
             h("div", {class: "panel-actions"}, actions)),
           h("div", {class: "panel-body"}, children));
}

/** A figure with its label; kind: "ok" | "warning" | "critical" colours it. */
export function statCard({label, value, detail = null, kind = null, href = null, extra = null,
                          key = null}) {
  const body = [h("div", {class: "stat-label"}, label),
                h("div", {class: "stat-value"}, value),
                detail === null ? null : h("div", {class: "stat-detail"}, detail), extra];
  const props = {class: ["stat", kind && `stat-${kind}`], dataset: key ? {stat: key} : {}};
  return href ? h("a", {...props, href}, body) : h("div", props, body);
}

/** kind: info | ok | warning | critical | muted. */
export function badge(text, kind = "info") {
  return h("span", {class: `badge badge-${kind}`}, text);
}

// --- notices --------------------------------------------------------------------------------

/** An inline message; kind: info | ok | warning | error | unavailable. */
export function notice(kind, ...content) {
  return h("div", {class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status"},
           content);
}

/** An ApiError (or any error) as the API said it: its message, its code. */
export function errorNotice(err) {
  const code = err instanceof ApiError ? err.code : null;
  return notice("error", h("strong", null, err.message || String(err)),
                code ? h("code", {class: "error-code"}, code) : null);
}

/** Where the broker lacks something a page would show: say so, never fake data. */
export function notAvailable(what, why = "") {
  return notice("unavailable", h("strong", null, "Not available yet: "), what,
                why ? h("span", {class: "notice-why"}, ` ${why}`) : null);
}

/** A message in the corner that goes by itself; kind: info | ok | error. */
export function toast(message, kind = "info", ms = 4000) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = h("div", {class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status"},
                 message);
  box.append(item);
  setTimeout(() => item.remove(), ms);
}

// --- table ----------------------------------------------------------------------------------

/**
 * columns: [{label, value: (row) => node|string, class, numeric, sort: (row) => comparable}]
 * options: {rows, empty: "text", limit: rows shown before "Show more", rowProps: (row) =>
 * props for the <tr>}. Returns {el, update(rows)}: only `limit` rows are in the DOM until
 * asked, so a list of thousands costs what is shown.
 */
export function table(columns, {rows = [], empty = "Nothing here.", limit = 50,
                                rowProps = null, caption = null} = {}) {
  const el = h("div", {class: "table-wrap"});
  let current = rows, shown = limit, sortBy = null, descending = false;

  function sorted() {
    if (sortBy === null) return current;
    const key = columns[sortBy].sort;
    const out = [...current].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    return descending ? out.reverse() : out;
  }

  function header() {
    return h("tr", null, columns.map((column, i) => {
      const props = {class: [column.numeric && "num", column.class], scope: "col"};
      if (!column.sort) return h("th", props, column.label);
      const mark = sortBy === i ? (descending ? " ▾" : " ▴") : "";
      props["aria-sort"] = sortBy === i ? (descending ? "descending" : "ascending") : "none";
      return h("th", props, h("button", {type: "button", class: "sort", onclick: () => {
        descending = sortBy === i ? !descending : false;
        sortBy = i;
        draw();
      }}, column.label + mark));
    }));
  }

  function draw() {
    if (!current.length) {
      mount(el, h("p", {class: "empty"}, empty));
      return;
    }
    const visible = sorted().slice(0, shown);
    const body = visible.map((row) => h("tr", rowProps ? rowProps(row) : null,
      columns.map((column) => h("td", {class: [column.numeric && "num", column.class]},
                                column.value(row)))));
    const more = current.length > shown ? h("button", {
      type: "button", class: "button button-quiet more",
      onclick: () => { shown += limit; draw(); },
    }, `Show ${Math.min(limit, current.length - shown)} more of ${current.length - shown}`) : null;
    mount(el, h("table", {class: "table"}, caption ? h("caption", null, caption) : null,
                h("thead", null, header()), h("tbody", null, body)), more);
  }

  draw();
  return {el, update(next) { current = next; draw(); }};
}

// --- forms ----------------------------------------------------------------------------------

/**
 * One labelled input with its inline error. spec: {name, label, type: text | password |
 * email | number | select | checkbox | textarea, value, placeholder, help, required,
 * options: [[value, label]] for select, min, max, step, autocomplete, validate: (value) =>
 * message | null}. Returns {el, input, name, value(), setError(message), check()}.
 */
export function field(spec) {
  const id = `f-${spec.name.replace(/[^\w-]/g, "-")}-${Math.random().toString(36).slice(2, 7)}`;
  const error = h("div", {class: "field-error", id: `${id}-error`, hidden: true});
  const common = {id, name: spec.name, required: spec.required, placeholder: spec.placeholder,
                  autocomplete: spec.autocomplete, "aria-describedby": `${id}-error`};
  let input;
  if (spec.type === "select") {
    input = h("select", common, (spec.options || []).map(([value, label]) =>
      h("option", {value, selected: String(value) === String(spec.value ?? "")}, label)));
  } else if (spec.type === "textarea") {
    input = h("textarea", {...common, rows: spec.rows || 4}, spec.value ?? "");
  } else if (spec.type === "checkbox") {
    input = h("input", {...common, type: "checkbox", checked: Boolean(spec.value)});
  } else {
    input = h("input", {...common, type: spec.type || "text", value: spec.value ?? "",
                        min: spec.min, max: spec.max, step: spec.step,
                        minlength: spec.minlength, maxlength: spec.maxlength});
  }
  const label = h("label", {for: id}, spec.label, spec.required ? h("span", {
    class: "required", title: "required"}, " *") : null);
  const help = spec.help ? h("div", {class: "field-help"}, spec.help) : null;
  const el = spec.type === "checkbox"
    ? h("div", {class: "field field-checkbox", dataset: {field: spec.name}},
        h("label", {for: id}, input, " ", spec.label), help, error)
    : h("div", {class: "field", dataset: {field: spec.name}}, label, input, help, error);

  const out = {
    el, input, name: spec.name,
    value() {
      if (spec.type === "checkbox") return input.checked;
      if (spec.type === "number") return input.value === "" ? null : Number(input.value);
      return input.value;
    },
    setError(message) {
      error.textContent = message || "";
      error.hidden = !message;
      if (message) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    },
    /** Run the field's own rule; true when it holds. */
    check() {
      const value = out.value();
      let message = null;
      if (spec.required && (value === "" || value === null)) message = `${spec.label} is required`;
      else if (spec.validate) message = spec.validate(value);
      out.setError(message);
      return !message;
    },
  };
  input.addEventListener("input", () => { if (!error.hidden) out.check(); });
  return out;
}

/**
 * A form of fields. options: {fields: [field specs or field() results], submitLabel,
 * onSubmit: async (values, form) => void, fieldFor: (ApiError) => field name | null,
 * extra: nodes after the fields}. A submit checks every field first; an ApiError from
 * onSubmit is shown at the field its message names ("username must have ...", or what
 * fieldFor says), else above the buttons. Returns {el, fields, values(), showError(err)}.
 */
export function form({fields, submitLabel = "Save", onSubmit, fieldFor = null, extra = null,
                      secondary = null}) {
  const made = fields.map((spec) => (spec.el ? spec : field(spec)));
  const byName = Object.fromEntries(made.map((f) => [f.name, f]));
  const formError = h("div", {class: "form-error", role: "alert", hidden: true});
  const submit = h("button", {type: "submit", class: "button button-primary"}, submitLabel);
  const el = h("form", {class: "form", novalidate: true},
               made.map((f) => f.el), extra, formError,
               h("div", {class: "form-buttons"}, submit, secondary));

  const out = {
    el, fields: byName,
    values() { return Object.fromEntries(made.map((f) => [f.name, f.value()])); },
    clearErrors() {
      made.forEach((f) => f.setError(null));
      formError.hidden = true;
    },
    showError(err) {
      const message = err.message || String(err);
      const name = (fieldFor && fieldFor(err)) ||
        made.map((f) => f.name).sort((a, b) => b.length - a.length)
          .find((n) => message.startsWith(n + " ") || message.startsWith(n + ":"));
      if (name && byName[name]) {
        byName[name].setError(message);
        byName[name].input.focus();
      } else {
        formError.replaceChildren(h("strong", null, message),
                                  err instanceof ApiError ? h("code", {class: "error-code"},
                                                              err.code) : null);
        formError.hidden = false;
      }
    },
  };
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    out.clearErrors();
    if (!made.map((f) => f.check()).every(Boolean)) return;
    submit.disabled = true;
    try {
      await onSubmit(out.values(), out);
    } catch (err) {
      if (err?.name === "AbortError") return;
      out.showError(err);
      if (!(err instanceof ApiError)) console.error(err);
    } finally {
      submit.disabled = false;
    }
  });
  return out;
}

/** "line 2, column 5" from the character offset JSON.parse names. */
function where(text, offset) {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return `line ${line}, column ${offset - before.lastIndexOf("\n")}`;
}

/**
 * A textarea for JSON with its parse error shown as one types. options: {name, label,
 * value (any JSON value, or text), rows, help, placeholder, optional (empty text is the
 * value null)}. Returns {el, textarea, text(), value() (the parsed value; throws
 * SyntaxError), valid(), check(), setError(message)}: a field for form().
 */
export function jsonEditor({name = "json", label = "JSON", value = {}, rows = 10,
                            help = null, placeholder = null, optional = false} = {}) {
  const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  const spec = field({name, label, type: "textarea", value: text, rows, help, placeholder});
  spec.el.classList.add("field-json");
  spec.input.spellcheck = false;
  const parse = () => {
    const source = spec.input.value;
    if (optional && !source.trim()) return {ok: true, value: null};
    try {
      return {ok: true, value: JSON.parse(source)};
    } catch (err) {
      const at = /position (\d+)/.exec(err.message);
      const message = at && !/line \d+/.test(err.message)
        ? `${err.message} (${where(source, Number(at[1]))})` : err.message;
      return {ok: false, message: `Not valid JSON: ${message}`};
    }
  };
  let timer = 0;
  spec.input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const parsed = parse();
      spec.setError(parsed.ok ? null : parsed.message);
    }, 250);
  });
  return {
    ...spec,
    textarea: spec.input,
    text: () => spec.input.value,
    value() {
      const parsed = parse();
      if (!parsed.ok) throw new SyntaxError(parsed.message);
      return parsed.value;
    },
    valid() { return parse().ok; },
    check() {
      // A submit checks now: the parse still pending from the last keystroke must not run
      // after it and wipe the error the server answers with.
      clearTimeout(timer);
      const parsed = parse();
      spec.setError(parsed.ok ? null : parsed.message);
      return parsed.ok;
    },
  };
}

// --- confirm --------------------------------------------------------------------------------

/**
 * Ask before doing something that cannot be undone. options: {title, message, confirmLabel,
 * danger (default true), typeToConfirm: a name the user must type first}. Resolves to true
 * when confirmed, false when cancelled (Escape, Cancel).
 */
export function confirmDialog({title, message, confirmLabel = "Delete", danger = true,
                               typeToConfirm = null}) {
  return new Promise((resolve) => {
    const typed = typeToConfirm ? h("input", {type: "text", class: "confirm-input",
                                              "aria-label": `type ${typeToConfirm}`}) : null;
    const ok = h("button", {type: "submit", value: "ok",
                            class: ["button", danger ? "button-danger" : "button-primary"],
                            disabled: Boolean(typeToConfirm)}, confirmLabel);
    const cancel = h("button", {type: "submit", value: "cancel", class: "button button-quiet"},
                     "Cancel");
    const dialog = h("dialog", {class: "dialog"},
      h("form", {method: "dialog"},
        h("h2", null, title),
        h("p", null, message),
        typed ? h("label", {class: "confirm-label"}, "Type ", h("code", null, typeToConfirm),
                  " to confirm", typed) : null,
        h("div", {class: "form-buttons"}, ok, cancel)));
    typed?.addEventListener("input", () => { ok.disabled = typed.value !== typeToConfirm; });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "ok");
    });
    document.body.append(dialog);
    dialog.showModal();
    (typed || (danger ? cancel : ok)).focus();  // Enter must not destroy by accident
  });
}
