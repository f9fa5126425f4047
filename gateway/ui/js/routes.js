// Every page of the UI: its address pattern, its module (loaded when first shown) and the
// navigation entry it belongs to. To add a page: write js/pages/<name>.js (see docs/UI.md)
// and add one line here. `:name` matches one path segment, URL-decoded into ctx.params.
// `public`: shown without a credential; `bare`: without the navigation (sign-in).

export const routes = [
  {path: "/ui/", nav: "dashboard", page: () => import("./pages/dashboard.js")},
  {path: "/ui/signin", public: true, bare: true, page: () => import("./pages/signin.js")},
  {path: "/ui/request-account", public: true, bare: true,
   page: () => import("./pages/request-account.js")},
  // domains, queues, the live view and the publisher (issue 11, points 3 and 4)
  {path: "/ui/domains", nav: "domains", page: () => import("./pages/domains.js")},
  {path: "/ui/domains/:domain", nav: "domains", page: () => import("./pages/domain.js")},
  {path: "/ui/domains/:domain/queues/:queue", nav: "domains",
   page: () => import("./pages/queue.js")},
  // consumer groups, dead letters, administration (issue 11, points 5 and 6)
  {path: "/ui/consumer-groups", nav: "groups", page: () => import("./pages/groups.js")},
  {path: "/ui/domains/:domain/queues/:queue/groups/:group", nav: "groups",
   page: () => import("./pages/group.js")},
  {path: "/ui/admin", nav: "admin", page: () => import("./pages/admin-overview.js")},
  {path: "/ui/admin/users", nav: "admin", page: () => import("./pages/admin-users.js")},
  {path: "/ui/admin/account-requests", nav: "admin",
   page: () => import("./pages/admin-requests.js")},
  {path: "/ui/admin/services", nav: "admin", page: () => import("./pages/admin-services.js")},
  {path: "/ui/admin/settings", nav: "admin", page: () => import("./pages/admin-settings.js")},
  {path: "/ui/admin/routing-rules", nav: "admin", page: () => import("./pages/admin-routing.js")},
];

// The navigation bar.
// `admin`: shown to admins only when authentication is on.
export const NAV = [
  {key: "dashboard", label: "Dashboard", href: "/ui/"},
  {key: "domains", label: "Domains", href: "/ui/domains"},
  {key: "groups", label: "Consumer groups", href: "/ui/consumer-groups"},
  {key: "admin", label: "Admin", href: "/ui/admin", admin: true},
];

export const notFound = () => import("./pages/notfound.js");
