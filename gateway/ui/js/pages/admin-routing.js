// Routing rules (/ui/admin/routing-rules): they do not exist in this version of the broker
// (a domain's routingRules is refused with 400 unsupported, its routes are always [], and
// there is no /api/domains/{d}/routes), so the page says so and shows nothing made up.

import {notAvailable, pageHeader, section} from "../components.js";
import {h} from "../dom.js";
import {adminTabs} from "../widgets/admin-nav.js";

export const name = "admin-routing";
export const title = "Routing rules";

export function render(ctx) {
  ctx.root.append(pageHeader("Routing rules"), adminTabs("routing-rules"),
    section("Routing rules and their tester", {id: "routing-rules"},
      notAvailable("routing rules.", "This version of the broker has none: creating a domain "
        + "with routingRules is refused (400 unsupported), a domain's routes are always empty, "
        + "and there is no /api/domains/{domain}/routes to list, add or test rules. This page "
        + "will hold them, with a tester, once the broker does."),
      h("p", {class: "chart-note"}, "Until then, a publisher sends each message to the queue "
        + "it is for.")));
}
