// Administration (/ui/admin): the way to each admin page, with what it holds now (users,
// account requests waiting, service accounts, the config file), asked of the API at once.
// With authentication on, only admins see it in the navigation; anyone else opening it
// gets the server's 403, shown as the page's error.

import {api} from "../api.js";
import {pageHeader, statCard} from "../components.js";
import {fmtNumber, h} from "../dom.js";
import {adminTabs, authenticationOffNotice} from "../widgets/admin-nav.js";

export const name = "admin-overview";
export const title = "Administration";

export async function render(ctx) {
  const signal = ctx.signal;
  const [users, pending, services, settings] = await Promise.all([
    api.get("/api/admin/users", {signal}),
    api.get("/api/admin/account-requests", {query: {status: "pending"}, signal}),
    api.get("/api/services", {signal}),
    api.get("/api/admin/settings", {signal}),
  ]);
  const disabled = users.users.filter((u) => u.disabled).length;
  ctx.root.append(pageHeader("Administration"), adminTabs("overview"), authenticationOffNotice(),
    h("div", {class: "stats-row", id: "admin-overview"},
      statCard({key: "users", label: "Users", value: fmtNumber(users.users.length),
                href: "/ui/admin/users",
                detail: `${fmtNumber(users.users.filter((u) => u.role === "admin").length)} admins`
                        + (disabled ? `, ${fmtNumber(disabled)} disabled` : "")}),
      statCard({key: "requests", label: "Account requests waiting", value: fmtNumber(pending.count),
                href: "/ui/admin/account-requests?status=pending",
                kind: pending.count ? "warning" : null}),
      statCard({key: "services", label: "Service accounts", value: fmtNumber(services.count),
                href: "/ui/admin/services"}),
      statCard({key: "settings", label: "Settings",
                value: settings.file ? (settings.restartNeeded ? "restart needed" : "in effect")
                                     : "no config file",
                kind: settings.restartNeeded ? "warning" : null, href: "/ui/admin/settings",
                detail: settings.file || "started without one"}),
      statCard({key: "routing", label: "Routing rules", value: "none",
                href: "/ui/admin/routing-rules", detail: "not in this version"})));
}
