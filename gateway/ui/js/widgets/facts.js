// A list of labelled facts (a group's settings, a service's identity): a <dl> whose values
// carry data-fact=<key>, so tests and people find one by name.
//
//   facts([["Ack mode", group.ackMode, "ackMode"], ["Created", fmtDateTime(t), "createdAt"]])

import {h} from "../dom.js";

/** items: [[label, value (node or text), key]]; a null value is shown as "–". */
export function facts(items, {id = null} = {}) {
  return h("dl", {class: "facts", id}, items.map(([label, value, key]) => [
    h("dt", null, label),
    h("dd", {dataset: key ? {fact: key} : {}}, value === null || value === undefined ? "–" : value),
  ]));
}
