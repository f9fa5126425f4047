// The frame around every page: the header with the navigation and who is signed in, the
// <main> a page renders into, and the corner where toasts appear. Built once, at start.

import {session} from "./api.js";
import {h, mount} from "./dom.js";
import {NAV} from "./routes.js";

export function createLayout(root, {onSignOut}) {
  const links = new Map();
  const nav = h("nav", {class: "nav", "aria-label": "Main"});
  const account = h("div", {class: "account"});
  const page = h("main", {id: "page", class: "page", tabindex: "-1"});
  const header = h("header", {class: "topbar"},
    h("a", {href: "/ui/", class: "brand"}, h("span", {class: "brand-mark"}), "GoRTMS"),
    nav, account);
  const toasts = h("div", {id: "toasts", class: "toasts", "aria-live": "polite"});
  mount(root, header, page, toasts);

  function drawNav() {
    links.clear();
    const user = session.current()?.user;
    const isAdmin = !session.authentication || user?.role === "admin";
    mount(nav, NAV.filter((item) => !item.admin || isAdmin).map((item) => {
      const link = h("a", {href: item.href, dataset: {nav: item.key}}, item.label);
      links.set(item.key, link);
      return link;
    }));
  }

  function drawAccount() {
    const user = session.current()?.user;
    const node = h("span", {class: "node", title: "node id, version"},
                   `${session.nodeId} · ${session.version}`);
    if (!session.authentication) {
      mount(account, node, h("span", {class: "badge badge-muted",
                                      title: "security.enableAuthentication is off"},
                             "authentication off"));
      return;
    }
    mount(account, node, user ? [
      h("span", {class: "user"}, user.username, h("small", null, user.role)),
      h("button", {type: "button", class: "button button-quiet", onclick: onSignOut},
        "Sign out"),
    ] : null);
  }

  return {
    page, toasts,
    /** Before a page renders: which nav entry is current, and whether to show the frame. */
    show({nav: current, bare}) {
      header.hidden = bare;
      drawNav();
      drawAccount();
      for (const [key, link] of links) {
        if (key === current) link.setAttribute("aria-current", "page");
        else link.removeAttribute("aria-current");
      }
    },
  };
}
