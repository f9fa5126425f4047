// Account requests (/ui/admin/account-requests, admins): GET /api/admin/account-requests
// with a status filter (kept in the address, ?status=), approving one with a role or
// rejecting it with a reason (POST .../{id}/review: a request is reviewed once), deleting one.

import {api} from "../api.js";
import {badge, confirmDialog, errorNotice, pageHeader, section, table,
        toast} from "../components.js";
import {fmtDateTime, fmtNumber, h, mount} from "../dom.js";
import {adminTabs, authenticationOffNotice} from "../widgets/admin-nav.js";
import {promptDialog} from "../widgets/prompt.js";

export const name = "admin-requests";
export const title = "Account requests";

const STATUSES = ["pending", "approved", "rejected"];
const STATUS_KIND = {pending: "warning", approved: "ok", rejected: "muted"};

export async function render(ctx) {
  let status = STATUSES.includes(ctx.query.get("status")) ? ctx.query.get("status") : "";
  const errors = h("div");
  const count = h("p", {class: "chart-note", id: "requests-count"});
  const picker = h("select", {"aria-label": "Status"},
    h("option", {value: "", selected: status === ""}, "every status"),
    STATUSES.map((s) => h("option", {value: s, selected: s === status}, s)));

  const requests = table([
    {label: "Username", value: (r) => r.username, sort: (r) => r.username},
    {label: "Email", value: (r) => r.email || "–"},
    {label: "Status", value: (r) => badge(r.status, STATUS_KIND[r.status]), sort: (r) => r.status},
    {label: "Asked", value: (r) => fmtDateTime(r.createdAt), sort: (r) => r.createdAt},
    {label: "Reviewed", value: (r) => (r.reviewedAt ? `${fmtDateTime(r.reviewedAt)} by `
                                       + `${r.reviewedBy}` : "–")},
    {label: "Outcome", value: (r) => (r.status === "approved" ? `role ${r.approvedRole}`
      : r.status === "rejected" ? (r.rejectReason || "no reason given") : "–")},
    {label: "", class: "actions", value: (r) => actions(r)},
  ], {empty: "No account request.", rowProps: (r) => ({dataset: {request: r.username,
                                                                  status: r.status}})});

  function actions(request) {
    const buttons = [];
    if (request.status === "pending") {
      const role = h("select", {"aria-label": `role for ${request.username}`, class: "role-select"},
                     h("option", {value: "user"}, "user"), h("option", {value: "admin"}, "admin"));
      buttons.push(role, h("button", {type: "button", class: "button button-primary",
        dataset: {action: "approve"}, onclick: () => approve(request, role.value)}, "Approve"),
      h("button", {type: "button", class: "button", dataset: {action: "reject"},
                   onclick: () => reject(request)}, "Reject…"));
    }
    buttons.push(h("button", {type: "button", class: "button button-quiet",
      dataset: {action: "delete"}, onclick: () => remove(request)}, "Delete…"));
    return h("span", {class: "row-actions"}, buttons);
  }

  async function load() {
    const reply = await api.get("/api/admin/account-requests",
                                {query: {status}, signal: ctx.signal});
    requests.update(reply.requests);
    mount(count, `${fmtNumber(reply.count)} request${reply.count === 1 ? "" : "s"}`
          + (status ? ` ${status}.` : "."));
  }

  async function act(work, done) {
    mount(errors);
    try {
      await work();
      toast(done, "ok");
      await load();
    } catch (err) {
      mount(errors, errorNotice(err));
    }
  }

  function approve(request, role) {
    return act(() => api.post(`/api/admin/account-requests/${encodeURIComponent(request.id)}/review`,
                              {approve: true, approvedRole: role}, {signal: ctx.signal}),
               `${request.username} approved as ${role}: the user can sign in`);
  }

  async function reject(request) {
    const values = await promptDialog({
      title: `Reject the request of ${request.username}?`,
      message: "No user is made. A request is reviewed once.",
      fields: [{name: "rejectReason", label: "Reason", type: "textarea", rows: 3,
                help: "optional, at most 1024 characters", maxlength: 1024}],
      confirmLabel: "Reject", danger: true});
    if (!values) return;
    const body = {approve: false};
    if (values.rejectReason.trim()) body.rejectReason = values.rejectReason.trim();
    await act(() => api.post(`/api/admin/account-requests/${encodeURIComponent(request.id)}/review`,
                             body, {signal: ctx.signal}), `${request.username} rejected`);
  }

  async function remove(request) {
    const ok = await confirmDialog({
      title: `Delete the request of ${request.username}?`,
      message: request.status === "approved" ? "The user it made stays; only the request goes."
        : "The request goes; the person may ask again.",
      confirmLabel: "Delete"});
    if (!ok) return;
    await act(() => api.del(`/api/admin/account-requests/${encodeURIComponent(request.id)}`,
                            {signal: ctx.signal}), `Request of ${request.username} deleted`);
  }

  picker.addEventListener("change", async () => {
    status = picker.value;
    ctx.setQuery({status});
    mount(errors);
    try {
      await load();
    } catch (err) {
      mount(errors, errorNotice(err));
    }
  });

  await load();
  ctx.root.append(pageHeader("Account requests", h("label", {class: "picker"},
                    h("span", null, "Status"), picker)),
                  adminTabs("account-requests"), authenticationOffNotice(), errors,
                  section("Account requests", {id: "requests"}, requests.el, count));
}
