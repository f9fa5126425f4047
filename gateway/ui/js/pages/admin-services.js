// Service accounts (/ui/admin/services, admins): the programs that sign requests with
// HMAC-SHA256 (docs/security.md). Listed from GET /api/services; created with a name, a
// description, permissions (widgets/permissions.js) and an IP allow-list; the secret the
// broker answers a creation or a rotation with is shown once (widgets/secret.js); permissions
// and allow-list changed (PUT .../permissions); deleted with a typed confirmation.

import {api} from "../api.js";
import {badge, confirmDialog, errorNotice, form, pageHeader, section, table,
        toast} from "../components.js";
import {fmtDateTime, h, mount} from "../dom.js";
import {adminTabs, authenticationOffNotice} from "../widgets/admin-nav.js";
import {permissionsBuilder} from "../widgets/permissions.js";
import {secretReveal} from "../widgets/secret.js";

export const name = "admin-services";
export const title = "Service accounts";

const NAME = /^[A-Za-z0-9._:-]{1,128}$/;

function allowlistSpec(value = []) {
  return {name: "ipAllowlist", label: "IP allow-list", type: "textarea", rows: 3,
          value: value.join("\n"),
          help: "one per line: exact addresses, prefixes ending in * (10.0.*), CIDR blocks "
                + "(10.1.0.0/16); empty: any address"};
}

function parseAllowlist(text) {
  return text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
}

/** The server names "permission '...'" when one is bad: that is the builder's error. */
function fieldFor(err) {
  return /^permissions? /.test(err.message) ? "permissions" : null;
}

async function domainNames(signal) {
  try {
    return (await api.get("/api/domains", {signal})).domains.map((d) => d.name);
  } catch (err) {
    if (err?.name === "AbortError") throw err;
    return [];  // only suggestions: a name can be typed all the same
  }
}

export async function render(ctx) {
  const [list, domains] = await Promise.all([
    api.get("/api/services", {signal: ctx.signal}), domainNames(ctx.signal)]);
  const errors = h("div");
  const reveal = h("div", {id: "secret"});
  const editor = h("div", {id: "edit-permissions"});

  const services = table([
    {label: "Name", value: (s) => h("span", null, h("strong", null, s.name),
      s.description ? h("div", {class: "muted small"}, s.description) : null),
     sort: (s) => s.name},
    {label: "X-Service-ID", value: (s) => h("code", {class: "small"}, s.id)},
    {label: "Permissions", value: (s) => (s.permissions.length
      ? h("span", {class: "perm-list"}, s.permissions.map((p) => h("code", {class: "perm"}, p)))
      : h("span", {class: "muted"}, "none"))},
    {label: "Allow-list", value: (s) => (s.ipAllowlist.length ? s.ipAllowlist.join(", ")
                                                             : h("span", {class: "muted"}, "any"))},
    {label: "Status", value: (s) => (s.enabled ? badge("enabled", "ok")
                                                : badge("disabled", "critical"))},
    {label: "Created", value: (s) => fmtDateTime(s.createdAt), sort: (s) => s.createdAt},
    {label: "Secret from", value: (s) => fmtDateTime(s.secretRotatedAt),
     sort: (s) => s.secretRotatedAt},
    {label: "", class: "actions", value: (s) => h("span", {class: "row-actions"},
      h("button", {type: "button", class: "button button-quiet", dataset: {action: "edit"},
                   onclick: () => edit(s)}, "Permissions…"),
      h("button", {type: "button", class: "button button-quiet", dataset: {action: "rotate"},
                   onclick: () => rotate(s)}, "Rotate secret…"),
      h("button", {type: "button", class: "button button-quiet", dataset: {action: "delete"},
                   onclick: () => remove(s)}, "Delete…"))},
  ], {empty: "No service account yet.", rowProps: (s) => ({dataset: {service: s.name}})});

  async function reload() {
    services.update((await api.get("/api/services", {signal: ctx.signal})).services);
  }

  function show(service, why) {
    mount(reveal, secretReveal(service, {why}));
    reveal.scrollIntoView({block: "nearest"});
  }

  async function act(work) {
    mount(errors);
    try {
      await work();
    } catch (err) {
      if (err?.name !== "AbortError") mount(errors, errorNotice(err));
    }
  }

  function edit(service) {
    const permissions = permissionsBuilder({value: service.permissions, domains});
    const change = form({
      fields: [permissions, allowlistSpec(service.ipAllowlist)],
      submitLabel: "Save permissions", fieldFor,
      secondary: h("button", {type: "button", class: "button button-quiet",
                              onclick: () => mount(editor)}, "Cancel"),
      async onSubmit(values) {
        await api.put(`/api/services/${encodeURIComponent(service.id)}/permissions`,
                      {permissions: values.permissions,
                       ipAllowlist: parseAllowlist(values.ipAllowlist)}, {signal: ctx.signal});
        toast(`Permissions of ${service.name} saved`, "ok");
        mount(editor);
        await reload();
      },
    });
    mount(editor, section(`Permissions of ${service.name}`, {class: "edit-panel"}, change.el));
    editor.scrollIntoView({block: "nearest"});
  }

  async function rotate(service) {
    const ok = await confirmDialog({
      title: `Rotate the secret of ${service.name}?`,
      message: "A new secret is made and shown once. The old one stops working at once, in "
        + "every gateway worker: the service fails until it has the new one.",
      confirmLabel: "Rotate"});
    if (!ok) return;
    await act(async () => {
      const rotated = await api.post(`/api/services/${encodeURIComponent(service.id)}/rotate-secret`,
                                     {}, {signal: ctx.signal});
      show(rotated, "rotated just now");
      await reload();
    });
  }

  async function remove(service) {
    const ok = await confirmDialog({
      title: `Delete the service account ${service.name}?`,
      message: "Its signed requests are refused from the next one on. This cannot be undone: a "
        + "new account gets a new id and secret.",
      confirmLabel: "Delete", typeToConfirm: service.name});
    if (!ok) return;
    await act(async () => {
      await api.del(`/api/services/${encodeURIComponent(service.id)}`, {signal: ctx.signal});
      toast(`Service account ${service.name} deleted`, "ok");
      await reload();
    });
  }

  const create = form({
    fields: [
      {name: "name", label: "Name", required: true,
       help: "1 to 128 characters: letters, digits and . _ : -",
       validate: (v) => (NAME.test(v) ? null
         : "name must have 1 to 128 characters of A-Z a-z 0-9 . _ : -")},
      {name: "description", label: "Description", help: "optional"},
      permissionsBuilder({domains}),
      allowlistSpec(),
    ],
    submitLabel: "Create the service account", fieldFor,
    async onSubmit(values, self) {
      const body = {name: values.name, permissions: values.permissions,
                    ipAllowlist: parseAllowlist(values.ipAllowlist)};
      if (values.description.trim()) body.description = values.description.trim();
      const created = await api.post("/api/services", body, {signal: ctx.signal});
      show(created, "just created");
      self.fields.name.input.value = "";
      self.fields.description.input.value = "";
      await reload();
    },
  });
  create.el.id = "create-service";

  ctx.root.append(pageHeader("Service accounts"), adminTabs("services"),
    authenticationOffNotice(), errors, reveal, editor,
    section("Service accounts", {id: "services"}, services.el),
    section("New service account", {id: "new-service"}, create.el));
  services.update(list.services);
}
