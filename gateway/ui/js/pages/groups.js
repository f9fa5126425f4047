// Consumer groups (/ui/consumer-groups): every group of every domain from
// GET /api/consumer-groups, with its lag, pending, consumers and circuit, each linking to its
// page; totals above; a filter on the names kept in the address (?filter=); refreshed every
// POLL_MS while visible. Only the rows shown are in the DOM (table limit), however many
// groups the broker holds.

import {api} from "../api.js";
import {errorNotice, pageHeader, section, statCard, table} from "../components.js";
import {fmtAgo, fmtNumber, fmtTime, h, mount, uiPath} from "../dom.js";
import {poll} from "../poll.js";
import {circuitBadge} from "../widgets/circuit.js";

export const name = "groups";
export const title = "Consumer groups";

const POLL_MS = 5000;

function matches(group, words) {
  const text = `${group.domain}/${group.queue}/${group.groupId}`.toLowerCase();
  return words.every((word) => text.includes(word));
}

export async function render(ctx) {
  performance.clearMarks("groups-ready");  // set again once this visit has drawn its rows
  let filter = ctx.query.get("filter") || "";
  let all = [];
  const updated = h("span", {class: "updated"}, "loading…");
  const search = h("input", {type: "search", class: "groups-filter", value: filter,
                             placeholder: "domain, queue or group", "aria-label": "Filter"});
  const totals = h("div", {class: "stats-row", id: "group-totals"});
  const errors = h("div");
  const groups = table([
    {label: "Domain", value: (g) => h("a", {href: uiPath(g.domain)}, g.domain),
     sort: (g) => g.domain},
    {label: "Queue", value: (g) => h("a", {href: uiPath(g.domain, g.queue)}, g.queue),
     sort: (g) => g.queue},
    {label: "Group", value: (g) => h("a", {href: uiPath(g.domain, g.queue, g.groupId),
                                           class: "group-link"}, g.groupId),
     sort: (g) => g.groupId},
    {label: "Lag", numeric: true, value: (g) => fmtNumber(g.lag), sort: (g) => g.lag},
    {label: "Pending", numeric: true, value: (g) => fmtNumber(g.pending), sort: (g) => g.pending},
    {label: "Consumers", numeric: true, value: (g) => fmtNumber(g.consumers.length),
     sort: (g) => g.consumers.length},
    {label: "Circuit", value: (g) => circuitBadge(g.circuit), sort: (g) => g.circuit},
    {label: "Ack mode", value: (g) => g.ackMode, sort: (g) => g.ackMode},
    {label: "Last activity", value: (g) => h("span", {title: g.lastActivity},
                                              fmtAgo(g.lastActivity)),
     sort: (g) => g.lastActivity},
  ], {empty: "No consumer group yet: a group is created by POST Q/consumer-groups, or by the "
             + "first fetch through it.",
      rowProps: (g) => ({dataset: {group: `${g.domain}/${g.queue}/${g.groupId}`}})});
  const count = h("p", {class: "chart-note", id: "groups-count"});

  function draw() {
    const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
    const shown = words.length ? all.filter((g) => matches(g, words)) : all;
    groups.update(shown);
    mount(count, words.length ? `${fmtNumber(shown.length)} of ${fmtNumber(all.length)} groups `
          + "match the filter." : `${fmtNumber(all.length)} groups.`);
    const open = all.filter((g) => g.circuit === "open").length;
    mount(totals,
      statCard({key: "groups", label: "Groups", value: fmtNumber(all.length)}),
      statCard({key: "lag", label: "Total lag", value: fmtNumber(all.reduce((n, g) => n + g.lag, 0)),
                detail: "messages not yet delivered"}),
      statCard({key: "pending", label: "Pending",
                value: fmtNumber(all.reduce((n, g) => n + g.pending, 0)),
                detail: "delivered, not acknowledged"}),
      statCard({key: "open", label: "Open circuits", value: fmtNumber(open),
                kind: open ? "critical" : null}));
  }

  search.addEventListener("input", () => {
    filter = search.value;
    ctx.setQuery({filter: filter.trim()});
    draw();
  });

  ctx.root.append(pageHeader("Consumer groups", search, updated), errors, totals,
                  section("Every group of every domain", {id: "groups"}, groups.el, count));
  const live = poll(async (signal) => {
    all = (await api.get("/api/consumer-groups", {signal})).groups;
    draw();
    mount(updated, `updated ${fmtTime(Date.now())}`);
  }, {intervalMs: POLL_MS, signal: ctx.signal,
      onError: (err) => mount(errors, err ? errorNotice(err) : null)});
  await live.first;
  performance.mark("groups-ready");  // tests/ui/test_groups.py reads it
}
