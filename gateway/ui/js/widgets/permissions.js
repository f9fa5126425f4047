// The permissions builder of service accounts (docs/security.md): rows of an action
// (publish, consume, manage, or * for any) on a domain (a name, or * for any), written as the
// strings the API takes ("publish:orders", "*:orders", "consume:*", "*"). It behaves as a
// form field (components.js form()): {el, input, name, value(), setError(), check()}.

import {h, mount} from "../dom.js";

const ACTIONS = [["publish", "publish"], ["consume", "consume"], ["manage", "manage"],
                 ["*", "* (any action)"]];
const DOMAIN = /^(\*|[A-Za-z0-9._:-]{1,128})$/;

/** "publish:orders" -> {action, domain}; a bare action means every domain. */
export function parsePermission(text) {
  const [action, domain] = text.includes(":") ? [text.slice(0, text.indexOf(":")),
                                                 text.slice(text.indexOf(":") + 1)] : [text, "*"];
  return {action, domain: domain || "*"};
}

export function formatPermission({action, domain}) {
  return action === "*" && domain === "*" ? "*" : `${action}:${domain}`;
}

let lists = 0;

/** options: {name, label, value: [strings], domains: [names offered]} */
export function permissionsBuilder({name = "permissions", label = "Permissions", value = [],
                                    domains = []} = {}) {
  const listId = `domains-${++lists}`;
  const datalist = h("datalist", {id: listId}, h("option", {value: "*"}),
                     domains.map((d) => h("option", {value: d})));
  const rows = h("div", {class: "perm-rows"});
  const preview = h("div", {class: "perm-preview", "aria-live": "polite"});
  const error = h("div", {class: "field-error", hidden: true});
  const add = h("button", {type: "button", class: "button button-quiet perm-add"},
                "+ Add a permission");
  const entries = [];

  function drawPreview() {
    const list = out.value();
    mount(preview, list.length ? list.map((p) => h("code", {class: "perm"}, p))
      : h("span", {class: "empty"}, "No permission: the service may read nothing and do nothing."));
  }

  function addRow(permission = {action: "publish", domain: "*"}) {
    const action = h("select", {"aria-label": "action", class: "perm-action"},
      ACTIONS.map(([v, text]) => h("option", {value: v, selected: v === permission.action}, text)));
    const domain = h("input", {type: "text", "aria-label": "domain", class: "perm-domain",
                               list: listId, value: permission.domain, placeholder: "* or a domain"});
    const entry = {action, domain};
    const remove = h("button", {type: "button", class: "button button-quiet perm-remove",
                                "aria-label": "remove this permission"}, "Remove");
    const row = h("div", {class: "perm-row"}, action, h("span", {class: "perm-on"}, "on"), domain,
                  remove);
    remove.addEventListener("click", () => {
      entries.splice(entries.indexOf(entry), 1);
      row.remove();
      drawPreview();
    });
    action.addEventListener("change", drawPreview);
    domain.addEventListener("input", drawPreview);
    entries.push(entry);
    rows.append(row);
    drawPreview();
    return entry;
  }

  add.addEventListener("click", () => addRow().domain.focus());
  const el = h("div", {class: "field perm-builder", dataset: {field: name}},
    h("span", {class: "field-label"}, label), datalist, rows, add,
    h("div", {class: "field-help"}, "Publishing needs publish; fetching, acking and watching "
      + "need consume; creating and deleting queues and groups, TTLs and redrive need manage. "
      + "Reading a domain's status needs any of them."),
    preview, error);

  const out = {
    el, name, input: add,
    value() {
      const seen = [];
      for (const e of entries) {
        const text = formatPermission({action: e.action.value, domain: e.domain.value.trim() || "*"});
        if (!seen.includes(text)) seen.push(text);
      }
      return seen;
    },
    setError(message) {
      error.textContent = message || "";
      error.hidden = !message;
    },
    check() {
      const bad = entries.find((e) => !DOMAIN.test(e.domain.value.trim() || "*"));
      out.setError(bad ? `domain “${bad.domain.value}” must be * or a name of 1-128 `
                         + "characters of A-Z a-z 0-9 . _ : -" : null);
      return !bad;
    },
  };
  value.map(parsePermission).forEach((p) => addRow(p));
  drawPreview();
  return out;
}
