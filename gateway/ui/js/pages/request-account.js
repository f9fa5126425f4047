// Asking for an account (authentication on): POST /api/account-requests, which an admin then
// approves or rejects. The same rules as the server's, checked before sending; the server's
// answer is shown where it applies.

import {api, session} from "../api.js";
import {form, notice} from "../components.js";
import {h, mount} from "../dom.js";

export const name = "request-account";
export const title = "Request an account";

const USERNAME = /^[A-Za-z0-9._@-]{3,64}$/;
const MIN_PASSWORD = 8;

export function render(ctx) {
  if (!session.authentication) return ctx.navigate("/ui/", {replace: true});
  const card = h("div", {class: "signin-card"});
  const request = form({
    fields: [
      {name: "username", label: "Username", required: true, autocomplete: "username",
       help: "3 to 64 characters: letters, digits and . _ @ -",
       validate: (v) => (USERNAME.test(v) ? null
         : "username must have 3 to 64 characters of A-Z a-z 0-9 . _ @ -")},
      {name: "email", label: "Email", type: "email", autocomplete: "email",
       help: "optional: for the administrators to reach you"},
      {name: "password", label: "Password", type: "password", required: true,
       autocomplete: "new-password",
       validate: (v) => (v.length >= MIN_PASSWORD ? null
         : `password must have at least ${MIN_PASSWORD} characters`)},
      {name: "confirm", label: "Password again", type: "password", required: true,
       autocomplete: "new-password"},
    ],
    submitLabel: "Send the request",
    // 409: the name is taken, or a request for it is pending
    fieldFor: (err) => (err.status === 409 ? "username" : null),
    async onSubmit(values, self) {
      if (values.password !== values.confirm) {
        self.fields.confirm.setError("the two passwords differ");
        return;
      }
      const body = {username: values.username, password: values.password};
      if (values.email) body.email = values.email;
      const created = await api.post("/api/account-requests", body, {anonymous: true});
      mount(card, h("h1", null, "Request sent"),
            notice("ok", `Your request for the account “${created.username}” was sent. `,
                   "An administrator will review it; once it is approved you can sign in."),
            h("p", null, h("a", {href: "/ui/signin"}, "Back to sign-in")));
    },
  });
  mount(card, h("div", {class: "signin-brand"}, h("span", {class: "brand-mark"}), "GoRTMS"),
        h("h1", null, "Request an account"), request.el,
        h("p", {class: "signin-alt"}, "Have an account? ", h("a", {href: "/ui/signin"}, "Sign in")));
  ctx.root.append(h("div", {class: "signin"}, card));
  request.fields.username.input.focus();
}
