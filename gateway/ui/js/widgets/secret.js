// A service account's secret, shown the one time the broker gives it out (its creation, a
// rotation): the value, a copy button (navigator.clipboard), and plainly that it will not be
// shown again. The broker keeps the secret sealed and never answers it a second time, so the
// panel goes once dismissed, and nothing keeps the value (not the address, not storage).

import {notice} from "../components.js";
import {h} from "../dom.js";

/** service: the API's answer with `secret`; onDone: called when dismissed. */
export function secretReveal(service, {why = "created", onDone = () => {}} = {}) {
  const value = h("code", {class: "secret-value", tabindex: "0"}, service.secret);
  const status = h("span", {class: "secret-status", role: "status"});
  const copy = h("button", {type: "button", class: "button button-primary secret-copy"},
                 "Copy the secret");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(service.secret);
      status.textContent = "Copied to the clipboard.";
      copy.dataset.copied = "true";
    } catch (err) {
      // No clipboard (an insecure origin, a refused permission): the text can still be selected.
      status.textContent = `The browser refused the clipboard (${err.message}): select the `
        + "secret and copy it by hand.";
      window.getSelection()?.selectAllChildren(value);
    }
  });
  const done = h("button", {type: "button", class: "button"}, "I have stored it");
  const el = h("div", {class: "secret-reveal", dataset: {service: service.id}},
    notice("warning",
      h("strong", null, `The secret of “${service.name}” (${why}): you will not see it again.`),
      " Copy it now and give it to the service; the broker keeps it sealed and never shows it "
      + "again. Lost, it can only be replaced (rotate)."),
    h("dl", {class: "facts"},
      h("dt", null, "X-Service-ID"), h("dd", null, h("code", {class: "secret-id"}, service.id)),
      h("dt", null, "Secret"), h("dd", null, value)),
    h("div", {class: "form-buttons"}, copy, done, status));
  done.addEventListener("click", () => {
    el.remove();
    onDone();
  });
  return el;
}
