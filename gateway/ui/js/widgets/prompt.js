// A modal that asks for a few values before an action (a rejection's reason, a new role):
// like confirmDialog (components.js), with fields. Resolves to the values, or null when
// cancelled (Cancel, Escape).
//
//   const values = await promptDialog({title: "Reject dana?", confirmLabel: "Reject",
//     fields: [{name: "reason", label: "Reason", type: "textarea"}]});

import {field} from "../components.js";
import {h} from "../dom.js";

export function promptDialog({title, message = null, fields, confirmLabel = "OK",
                              danger = false}) {
  return new Promise((resolve) => {
    const made = fields.map((spec) => field(spec));
    const ok = h("button", {type: "submit", value: "ok",
                            class: ["button", danger ? "button-danger" : "button-primary"]},
                 confirmLabel);
    const cancel = h("button", {type: "button", class: "button button-quiet"}, "Cancel");
    const body = h("form", {method: "dialog", class: "form", novalidate: true},
      h("h2", null, title), message ? h("p", null, message) : null,
      made.map((f) => f.el), h("div", {class: "form-buttons"}, ok, cancel));
    const dialog = h("dialog", {class: "dialog prompt-dialog"}, body);
    let values = null;
    body.addEventListener("submit", (event) => {
      if (!made.map((f) => f.check()).every(Boolean)) {
        event.preventDefault();  // stays open, the errors at their fields
        return;
      }
      values = Object.fromEntries(made.map((f) => [f.name, f.value()]));
    });
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(values);
    });
    document.body.append(dialog);
    dialog.showModal();
    (made[0]?.input || ok).focus();
  });
}
