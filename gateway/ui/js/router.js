// The router: the History API over the route table in routes.js.
//
// Links are real <a href="/ui/..."> elements: a plain click on one is caught here and shown
// without a reload (pushState); back and forward (popstate) show the page of the address;
// modified clicks (new tab), target=_blank and data-native links are left to the browser.
// Each page gets a fresh ctx whose `signal` is aborted when the page is left: pollers, fetches
// and listeners tied to it stop by themselves.

import {isAbort, session} from "./api.js";
import {h, mount} from "./dom.js";
import {errorNotice} from "./components.js";

const state = {routes: [], notFound: null, layout: null, controller: null, serial: 0};

function compile(path) {
  const names = [];
  const pattern = path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
    .replace(/:(\w+)/g, (_, name) => { names.push(name); return "([^/]+)"; });
  return {regex: new RegExp(`^${pattern}$`), names};
}

/** /ui -> /ui/, /ui/domains/ -> /ui/domains: one spelling per page. */
function normal(pathname) {
  if (pathname === "/ui" || pathname === "/ui/") return "/ui/";
  return pathname.endsWith("/") ? pathname.slice(0, -1) : pathname;
}

export function match(pathname) {
  const path = normal(pathname);
  for (const route of state.routes) {
    const found = route.compiled.regex.exec(path);
    if (!found) continue;
    const params = {};
    try {
      route.compiled.names.forEach((name, i) => { params[name] = decodeURIComponent(found[i + 1]); });
    } catch {
      return null;  // a malformed %-escape: no page has that address
    }
    return {route, params};
  }
  return null;
}

/** Show the page of `target` (a /ui/ path with its query); `replace` rewrites the entry. */
export function navigate(target, {replace = false} = {}) {
  const next = new URL(target, location.origin);
  const same = next.pathname + next.search === location.pathname + location.search;
  if (replace || same) history.replaceState(null, "", next.pathname + next.search + next.hash);
  else history.pushState(null, "", next.pathname + next.search + next.hash);
  if (!replace && !same) window.scrollTo(0, 0);
  return render();
}

/** The current address, for coming back after signing in. */
export function here() {
  return location.pathname + location.search;
}

/** Change the query string of this page's address without showing it again (filters). */
export function setQuery(values) {
  const params = new URLSearchParams(location.search);
  for (const [key, value] of Object.entries(values)) {
    if (value === null || value === undefined || value === "") params.delete(key);
    else params.set(key, value);
  }
  const text = params.toString();
  history.replaceState(null, "", location.pathname + (text ? `?${text}` : ""));
}

function onClick(event) {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey ||
      event.shiftKey || event.altKey) return;
  const link = event.target.closest?.("a[href]");
  if (!link || link.target || link.hasAttribute("download") || "native" in link.dataset) return;
  const url = new URL(link.getAttribute("href"), location.href);
  if (url.origin !== location.origin || !(url.pathname === "/ui" || url.pathname.startsWith("/ui/"))) return;
  if (url.pathname.startsWith("/ui/assets/")) return;
  event.preventDefault();
  navigate(url.pathname + url.search + url.hash);
}

async function render() {
  state.controller?.abort();
  const controller = new AbortController();
  state.controller = controller;
  const serial = ++state.serial;
  const found = match(location.pathname);
  const route = found?.route;
  if (!route?.public && !session.signedIn()) {  // not-found too: sign in, then see
    return navigate(`/ui/signin?next=${encodeURIComponent(here())}`, {replace: true});
  }
  const root = state.layout.page;
  state.layout.show({nav: route?.nav || null, bare: Boolean(route?.bare)});
  let module;
  try {
    module = await (route ? route.page() : state.notFound());
  } catch (err) {
    mount(root, errorNotice(new Error(`this page could not be loaded (${err.message})`)));
    return;
  }
  if (serial !== state.serial) return;  // another navigation began meanwhile
  const ctx = {root, params: found?.params || {}, query: new URLSearchParams(location.search),
               path: location.pathname, signal: controller.signal, navigate, setQuery};
  const title = typeof module.title === "function" ? module.title(ctx) : module.title;
  document.title = title ? `${title} · GoRTMS` : "GoRTMS";
  mount(root);
  root.dataset.page = module.name || (route ? route.path : "not-found");
  try {
    await module.render(ctx);
  } catch (err) {
    if (isAbort(err) || controller.signal.aborted) return;
    mount(root, h("h1", null, title || "Error"), errorNotice(err));
    if (err?.name !== "ApiError") console.error(err);  // a bug: loud, and the tests fail
  }
}

/** Start routing: routes as in routes.js, a layout from layout.js. */
export function startRouter({routes, notFound, layout}) {
  state.routes = routes.map((route) => ({...route, compiled: compile(route.path)}));
  state.notFound = notFound;
  state.layout = layout;
  document.addEventListener("click", onClick);
  window.addEventListener("popstate", () => render());
  if (location.pathname === "/ui") history.replaceState(null, "", "/ui/" + location.search);
  return render();
}
