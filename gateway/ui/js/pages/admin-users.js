// Users (/ui/admin/users, admins): GET /api/admin/users listed; POST to create one
// (username, password, role, email); PATCH /api/users/{id} to change a role, or to disable
// (its tokens end at once) and enable again. The server's own rules are checked before
// sending, and its answers shown where they apply.

import {api} from "../api.js";
import {badge, confirmDialog, errorNotice, form, pageHeader, section, table,
        toast} from "../components.js";
import {fmtDateTime, h, mount} from "../dom.js";
import {adminTabs, authenticationOffNotice, myId} from "../widgets/admin-nav.js";

export const name = "admin-users";
export const title = "Users";

const USERNAME = /^[A-Za-z0-9._@-]{3,64}$/;
const MIN_PASSWORD = 8;
const ROLES = [["user", "user: every domain operation"], ["admin", "admin: also administration"]];

export async function render(ctx) {
  const list = await api.get("/api/admin/users", {signal: ctx.signal});
  const errors = h("div");
  const me = myId();

  const users = table([
    {label: "Username", value: (u) => h("span", null, u.username,
      u.id === me ? h("small", {class: "muted"}, " (you)") : null), sort: (u) => u.username},
    {label: "Email", value: (u) => u.email || "–"},
    {label: "Role", value: (u) => roleCell(u), sort: (u) => u.role},
    {label: "Status", value: (u) => (u.disabled ? badge("disabled", "critical")
                                                 : badge("active", "ok")),
     sort: (u) => u.disabled},
    {label: "Created", value: (u) => fmtDateTime(u.createdAt), sort: (u) => u.createdAt},
    {label: "Changed", value: (u) => fmtDateTime(u.updatedAt), sort: (u) => u.updatedAt},
    {label: "", class: "actions", value: (u) => h("button", {
      type: "button", class: ["button", u.disabled ? "button-quiet" : "button-quiet danger-text"],
      dataset: {action: u.disabled ? "enable" : "disable"},
      onclick: () => setDisabled(u, !u.disabled)}, u.disabled ? "Enable" : "Disable…")},
  ], {empty: "No user yet.", rowProps: (u) => ({dataset: {user: u.username}})});

  function roleCell(user) {
    const select = h("select", {"aria-label": `role of ${user.username}`, class: "role-select"},
      ROLES.map(([value]) => h("option", {value, selected: value === user.role}, value)));
    select.addEventListener("change", async () => {
      const undo = () => { select.value = user.role; };
      if (user.id === me && select.value !== "admin" && !await confirmDialog({
        title: "Give up your admin role?",
        message: "You would no longer reach these pages; another admin must give it back.",
        confirmLabel: "Make me a user"})) {
        undo();
        return;
      }
      await change(user, {role: select.value}, `${user.username} is now ${select.value}`, undo);
    });
    return select;
  }

  async function reload() {
    users.update((await api.get("/api/admin/users", {signal: ctx.signal})).users);
  }

  async function change(user, patch, done, undo = () => {}) {
    mount(errors);
    try {
      await api.patch(`/api/users/${encodeURIComponent(user.id)}`, patch, {signal: ctx.signal});
      toast(done, "ok");
      await reload();
    } catch (err) {
      undo();
      mount(errors, errorNotice(err));
    }
  }

  async function setDisabled(user, disabled) {
    if (disabled) {
      const ok = await confirmDialog({
        title: `Disable ${user.username}?`,
        message: `${user.username} can no longer sign in, and every token it holds stops `
          + `working at once${user.id === me ? " (yours too: you will be signed out)" : ""}. `
          + "Enabling it again lets it sign in again.",
        confirmLabel: "Disable"});
      if (!ok) return;
    }
    await change(user, {disabled}, `${user.username} ${disabled ? "disabled" : "enabled"}`);
  }

  const create = form({
    fields: [
      {name: "username", label: "Username", required: true, autocomplete: "off",
       help: "3 to 64 characters: letters, digits and . _ @ -",
       validate: (v) => (USERNAME.test(v) ? null
         : "username must have 3 to 64 characters of A-Z a-z 0-9 . _ @ -")},
      {name: "password", label: "Password", type: "password", required: true,
       autocomplete: "new-password", help: `at least ${MIN_PASSWORD} characters`,
       validate: (v) => (v.length >= MIN_PASSWORD ? null
         : `password must have at least ${MIN_PASSWORD} characters`)},
      {name: "role", label: "Role", type: "select", value: "user", options: ROLES},
      {name: "email", label: "Email", type: "email", help: "optional, for people to read"},
    ],
    submitLabel: "Create the user",
    // 409: the username is taken
    fieldFor: (err) => (err.status === 409 ? "username" : null),
    async onSubmit(values, self) {
      const body = {username: values.username, password: values.password, role: values.role};
      if (values.email) body.email = values.email;
      const user = await api.post("/api/admin/users", body, {signal: ctx.signal});
      toast(`User ${user.username} (${user.role}) created`, "ok");
      self.fields.username.input.value = "";
      self.fields.password.input.value = "";
      self.fields.email.input.value = "";
      await reload();
    },
  });
  create.el.id = "create-user";

  ctx.root.append(pageHeader("Users"), adminTabs("users"), authenticationOffNotice(),
    errors,
    h("div", {class: "grid grid-2-1"},
      section("Users", {id: "users"}, users.el),
      section("New user", {id: "new-user"}, create.el)));
  users.update(list.users);
}
