// The domains (/ui/domains): every domain with its queue and message counts (GET
// /api/domains), a form to create one (name and an optional schema, the server's 400 or 409
// shown at the field it concerns), and delete behind a confirmation where the name is typed.

import {api, apiPath} from "../api.js";
import {confirmDialog, errorNotice, form, pageHeader, section, table,
        toast} from "../components.js";
import {fmtNumber, h, mount, uiPath} from "../dom.js";
import {schemaField} from "../widgets/queue-form.js";

export const name = "domains";
export const title = "Domains";

const NAME_RULE = /^[A-Za-z0-9._:-]{1,128}$/;

export function checkName(value) {
  if (!NAME_RULE.test(value) || value === "." || value === "..") {
    return "a name has 1-128 characters of A-Z a-z 0-9 . _ : - (and is not . or ..)";
  }
  return null;
}

/** Ask, then DELETE the domain; resolves true once it is gone. */
export async function deleteDomain(domain, {signal} = {}) {
  const sure = await confirmDialog({
    title: `Delete the domain ${domain}?`,
    message: "Every queue of the domain goes with it: their messages, consumer groups and "
      + "pending deliveries. This cannot be undone.",
    confirmLabel: "Delete domain", typeToConfirm: domain});
  if (!sure) return false;
  await api.del(apiPath(domain), {signal});
  toast(`Domain ${domain} deleted`, "ok");
  return true;
}

export async function render(ctx) {
  const problems = h("div");
  const list = table([
    {label: "Domain", sort: (d) => d.name,
     value: (d) => h("a", {href: uiPath(d.name), class: "domain-link"}, d.name)},
    {label: "Queues", numeric: true, sort: (d) => d.queueCount, value: (d) => fmtNumber(d.queueCount)},
    {label: "Messages", numeric: true, sort: (d) => d.messageCount,
     value: (d) => fmtNumber(d.messageCount)},
    {label: "", class: "cell-actions", value: (d) => h("button", {
      type: "button", class: "button button-quiet button-small", dataset: {delete: d.name},
      onclick: async () => {
        try {
          if (await deleteDomain(d.name, {signal: ctx.signal})) await refresh();
        } catch (err) {
          mount(problems, errorNotice(err));
        }
      }}, "Delete")},
  ], {empty: "No domain yet: create one with the form.",
      rowProps: (d) => ({dataset: {domain: d.name}})});

  async function refresh() {
    const answer = await api.get("/api/domains", {signal: ctx.signal});
    list.update(answer.domains);
    const count = answer.domains.length;
    total.textContent = `${fmtNumber(count)} domain${count === 1 ? "" : "s"}`;
    mount(problems);
  }

  const schema = schemaField();
  const create = form({
    fields: [
      {name: "name", label: "Name", required: true, autocomplete: "off",
       help: "1-128 characters of A-Z a-z 0-9 . _ : -", validate: checkName},
      schema,
    ],
    submitLabel: "Create domain",
    fieldFor: (err) => (["invalid_name", "domain_exists"].includes(err.code) ? "name"
      : err.code === "invalid_parameter" && /schema/.test(err.message) ? "schema" : null),
    async onSubmit(values) {
      const body = {name: values.name};
      if (values.schema !== null) body.schema = values.schema;
      await api.post("/api/domains", body, {signal: ctx.signal});
      toast(`Domain ${values.name} created`, "ok");
      ctx.navigate(uiPath(values.name));  // where its queues are made
    },
  });

  const total = h("span", {class: "updated"});
  ctx.root.append(
    pageHeader("Domains", total),
    problems,
    h("div", {class: "grid grid-2-1 domains-page"},
      section("All domains", {id: "domain-list"}, list.el),
      section("New domain", {id: "create-domain"}, create.el)));
  await refresh();
  ctx.root.querySelector(".domains-page").dataset.ready = "true";
}
