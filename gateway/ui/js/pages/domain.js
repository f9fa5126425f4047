// One domain (/ui/domains/{d}): its schema, its queues with how full each is against its
// maxSize (GET /api/domains/{d}), a form to create a queue with every setting (defaults
// shown), delete a queue or the domain behind a typed confirmation. Refreshed every POLL_MS
// while visible.

import {api, apiPath} from "../api.js";
import {badge, confirmDialog, errorNotice, notAvailable, pageHeader, section, statCard, table,
        toast} from "../components.js";
import {fmtAgo, fmtBytes, fmtNumber, h, mount, uiPath} from "../dom.js";
import {poll} from "../poll.js";
import {deleteDomain} from "./domains.js";
import {queueForm} from "../widgets/queue-form.js";
import {dlqSource, fillMeter, jsonBlock, percentOf} from "../widgets/queue-parts.js";

export const name = "domain";
export const title = (ctx) => ctx.params.domain;

const POLL_MS = 5000;

/** Ask, then DELETE the queue; resolves true once it is gone. */
export async function deleteQueue(domain, queue, {signal} = {}) {
  const sure = await confirmDialog({
    title: `Delete the queue ${queue}?`,
    message: `${domain}/${queue} goes with its messages, consumer groups, pending deliveries `
      + "and idempotency keys; live views of it close. This cannot be undone.",
    confirmLabel: "Delete queue", typeToConfirm: queue});
  if (!sure) return false;
  await api.del(apiPath(domain, queue), {signal});
  toast(`Queue ${domain}/${queue} deleted`, "ok");
  return true;
}

function schemaView(schema) {
  if (schema === null || schema === undefined || Object.keys(schema).length === 0) {
    return h("p", {class: "empty", dataset: {schema: "none"}},
             "No schema: any JSON object is accepted.");
  }
  const goForm = schema.fields || schema.Fields;
  return h("div", {dataset: {schema: goForm ? "fields" : "json-schema"}},
           h("p", {class: "field-help"}, goForm
             ? "Go form: every listed field must be present with that type."
             : "JSON Schema: every message is validated against it."),
           jsonBlock(schema, {id: "schema"}));
}

export async function render(ctx) {
  const {domain} = ctx.params;
  const errors = h("div");
  const totals = h("div", {class: "stats-row", id: "domain-totals"});
  const schemaBox = h("div");
  const queues = table([
    {label: "Queue", sort: (q) => q.name, value: (q) => h("span", {class: "queue-name"},
      h("a", {href: uiPath(domain, q.name)}, q.name),
      dlqSource(q.name) ? [" ", badge("dead letters", "muted")] : null)},
    {label: "Messages / max size", sort: (q) => percentOf(q.messageCount, q.config.maxSize),
     value: (q) => fillMeter(q.messageCount, q.config.maxSize)},
    {label: "Bytes", numeric: true, sort: (q) => q.bytes, value: (q) => fmtBytes(q.bytes)},
    {label: "Positions", numeric: true, value: (q) => (q.lastPosition
      ? `${fmtNumber(q.firstPosition)} – ${fmtNumber(q.lastPosition)}` : "–")},
    {label: "Groups", numeric: true, sort: (q) => q.groups, value: (q) => fmtNumber(q.groups)},
    {label: "Settings", value: (q) => h("span", {class: "queue-flags"},
      q.config.isPersistent ? null : badge("not persistent", "warning"),
      q.config.retention === "interest" ? badge("interest", "info") : null,
      q.config.retryEnabled ? badge("retries", "info") : null,
      q.config.circuitBreakerEnabled ? badge("circuit breaker", "info") : null,
      h("small", null, ` ttl ${q.config.ttl}`))},
    {label: "Created", sort: (q) => q.createdAt, value: (q) => h("time", {
      datetime: q.createdAt, title: q.createdAt}, fmtAgo(q.createdAt))},
    {label: "", class: "cell-actions", value: (q) => h("button", {
      type: "button", class: "button button-quiet button-small", dataset: {delete: q.name},
      onclick: async () => {
        try {
          if (await deleteQueue(domain, q.name, {signal: ctx.signal})) live.refresh();
        } catch (err) {
          mount(errors, errorNotice(err));
        }
      }}, "Delete")},
  ], {empty: "No queue yet: create one with the form.",
      rowProps: (q) => ({dataset: {queue: q.name}})});

  const create = queueForm({domain, signal: ctx.signal, async onCreated(answer) {
    toast(`Queue ${domain}/${answer.queue} created`, "ok");
    ctx.navigate(uiPath(domain, answer.queue));
  }});

  const remove = h("button", {type: "button", class: "button button-danger", id: "delete-domain",
    onclick: async () => {
      try {
        if (await deleteDomain(domain, {signal: ctx.signal})) ctx.navigate("/ui/domains");
      } catch (err) {
        mount(errors, errorNotice(err));
      }
    }}, "Delete domain");

  const page = h("div", {class: "domain-page"},
    h("p", {class: "breadcrumbs"}, h("a", {href: "/ui/domains"}, "Domains"), " / "),
    pageHeader(domain, remove),
    errors, totals,
    section("Queues", {id: "queues"}, queues.el),
    h("div", {class: "grid grid-1-1"},
      section("Schema", {id: "schema-panel"}, schemaBox),
      section("Routing rules", {id: "routes-panel"},
              notAvailable("routing rules.", "This version routes nothing: a domain's routes "
                           + "are always empty and creating one is refused."))),
    section("New queue", {id: "create-queue"}, create.el));

  // The first answer comes before the page is drawn, so an unknown domain is the page's
  // error (404 domain_not_found), not a form to create queues in it.
  let ahead = await api.get(apiPath(domain), {signal: ctx.signal});
  let schemaShown = false;
  async function refresh(signal) {
    const info = ahead || await api.get(apiPath(domain), {signal});
    ahead = null;
    const messages = info.queues.reduce((n, q) => n + q.messageCount, 0);
    const bytes = info.queues.reduce((n, q) => n + q.bytes, 0);
    const groups = info.queues.reduce((n, q) => n + q.groups, 0);
    mount(totals,
      statCard({key: "queues", label: "Queues", value: fmtNumber(info.queues.length)}),
      statCard({key: "messages", label: "Messages", value: fmtNumber(messages),
                detail: fmtBytes(bytes)}),
      statCard({key: "groups", label: "Consumer groups", value: fmtNumber(groups)}));
    queues.update(info.queues);
    if (!schemaShown) { mount(schemaBox, schemaView(info.schema)); schemaShown = true; }
  }
  const live = poll(refresh, {intervalMs: POLL_MS, signal: ctx.signal,
                              onError: (err) => mount(errors, err ? errorNotice(err) : null)});
  await live.first;
  ctx.root.append(page);
  page.dataset.ready = "true";
}
