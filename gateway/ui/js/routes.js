// Every page of the UI: its address pattern, its module (loaded when first shown) and the
// navigation entry it belongs to. To add a page: write js/pages/<name>.js (see docs/UI.md)
// and add one line here. `:name` matches one path segment, URL-decoded into ctx.params.
// `public`: shown without a credential; `bare`: without the navigation (sign-in).

export const routes = [
  {path: "/ui/", nav: "dashboard", page: () => import("./pages/dashboard.js")},
  {path: "/ui/signin", public: true, bare: true, page: () => import("./pages/signin.js")},
  {path: "/ui/request-account", public: true, bare: true,
   page: () => import("./pages/request-account.js")},
];

// The navigation bar. Entries whose pages do not exist yet lead to the not-found page.
// `admin`: shown to admins only when authentication is on.
export const NAV = [
  {key: "dashboard", label: "Dashboard", href: "/ui/"},
  {key: "domains", label: "Domains", href: "/ui/domains"},
  {key: "groups", label: "Consumer groups", href: "/ui/consumer-groups"},
  {key: "admin", label: "Admin", href: "/ui/admin", admin: true},
];

export const notFound = () => import("./pages/notfound.js");
