// Sign-in (authentication on): username and password to POST /api/auth/login; the token is
// kept for this tab (api.js session), then back to the page that asked (?next=). With
// authentication off there is nothing to sign in to: straight to the dashboard.

import {api, session} from "../api.js";
import {form, notice} from "../components.js";
import {h} from "../dom.js";

export const name = "signin";
export const title = "Sign in";

/** Only a UI address: ?next= must not send anyone to another site. */
export function nextPage(query) {
  const next = query.get("next") || "/ui/";
  return next.startsWith("/ui/") && !next.startsWith("//") ? next : "/ui/";
}

export function render(ctx) {
  if (!session.authentication) return ctx.navigate("/ui/", {replace: true});
  const signIn = form({
    fields: [
      {name: "username", label: "Username", required: true, autocomplete: "username"},
      {name: "password", label: "Password", type: "password", required: true,
       autocomplete: "current-password"},
    ],
    submitLabel: "Sign in",
    // The server's message ("wrong username or password", "too many failed logins; ...")
    // is about the pair, not one field.
    fieldFor: () => null,
    async onSubmit(values) {
      const reply = await api.post("/api/auth/login", values, {anonymous: true});
      session.save(reply);
      await ctx.navigate(nextPage(ctx.query), {replace: true});
    },
  });
  const ended = ctx.query.get("next") ? notice("info", "Sign in to continue.") : null;
  ctx.root.append(h("div", {class: "signin"},
    h("div", {class: "signin-card"},
      h("div", {class: "signin-brand"}, h("span", {class: "brand-mark"}), "GoRTMS"),
      h("h1", null, "Sign in"), ended, signIn.el,
      h("p", {class: "signin-alt"}, "No account yet? ",
        h("a", {href: "/ui/request-account"}, "Request an account"))),
  ));
  signIn.fields.username.input.focus();
}
