// What every admin page (/ui/admin/...) starts with: the tabs between them and, with
// authentication off, a word that users and service accounts only matter once it is on
// (the pages still work: the API does).

import {session} from "../api.js";
import {notice} from "../components.js";
import {h} from "../dom.js";

export const ADMIN_PAGES = [
  {key: "overview", label: "Overview", href: "/ui/admin"},
  {key: "users", label: "Users", href: "/ui/admin/users"},
  {key: "account-requests", label: "Account requests", href: "/ui/admin/account-requests"},
  {key: "services", label: "Service accounts", href: "/ui/admin/services"},
  {key: "settings", label: "Settings", href: "/ui/admin/settings"},
  {key: "routing-rules", label: "Routing rules", href: "/ui/admin/routing-rules"},
];

export function adminTabs(current) {
  return h("nav", {class: "tabs admin-tabs", "aria-label": "Administration"},
    ADMIN_PAGES.map((p) => h("a", {href: p.href, dataset: {tab: p.key},
                                   "aria-current": p.key === current ? "page" : null}, p.label)));
}

/** With authentication on, nothing (an empty fragment: root.append() would write "null"). */
export function authenticationOffNotice() {
  if (session.authentication) return document.createDocumentFragment();
  const el = notice("info", h("strong", null, "Authentication is off. "),
    "Users, account requests and service accounts only matter with "
    + "security.enableAuthentication on: until then nobody signs in and nothing checks a "
    + "credential. These pages still work, as the API does, so accounts can be prepared "
    + "before it is turned on.");
  el.id = "authentication-off";
  return el;
}

/** The signed-in user's id (null with authentication off). */
export function myId() {
  return session.current()?.user?.id ?? null;
}
