// The page for an address no route matches (routes.js).

import {h} from "../dom.js";

export const name = "not-found";
export const title = "Not found";

export function render(ctx) {
  ctx.root.append(
    h("div", {class: "not-found"},
      h("h1", null, "No such page"),
      h("p", null, "Nothing in the GoRTMS web UI lives at ", h("code", null, ctx.path), "."),
      h("p", null, h("a", {href: "/ui/"}, "Go to the dashboard"))));
}
