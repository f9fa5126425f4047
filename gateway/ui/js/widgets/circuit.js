// A consumer group's circuit breaker state as a badge (docs/API.md "Circuit breaker"):
// disabled (no breaker on the queue), closed, half-open, open; data-circuit holds the state.

import {badge} from "../components.js";

export const CIRCUIT_KIND = {disabled: "muted", closed: "ok", "half-open": "warning",
                             open: "critical"};

export function circuitBadge(state) {
  const el = badge(state, CIRCUIT_KIND[state] || "info");
  el.dataset.circuit = state;
  return el;
}
