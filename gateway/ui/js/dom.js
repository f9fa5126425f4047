// Building the DOM without HTML strings, and formatting figures for people.
//
// h("a", {href: "/ui/", class: "nav"}, "Dashboard") makes an element; children are nodes,
// strings (always text: data from the broker is never parsed as HTML), numbers, arrays or
// null (skipped). Props: `class` (string or array), `style` (an object, set through the
// CSSOM: the Content-Security-Policy blocks style attributes), `dataset`, `on<event>`
// listeners, `text`, boolean attributes (true/false), and any other attribute as a string.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, props, isSvg) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") {
      const names = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
      if (names) el.setAttribute("class", names);
    } else if (key === "style") {
      for (const [name, v] of Object.entries(value)) el.style.setProperty(name, v);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "text") {
      el.textContent = String(value);
    } else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (!isSvg && (key === "value" || key === "checked")) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  apply(el, props, false);
  append(el, children);
  return el;
}

export function svg(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, props, true);
  append(el, children);
  return el;
}

/** Replace an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// --- formatting -----------------------------------------------------------------------------

const integer = new Intl.NumberFormat("en", {maximumFractionDigits: 0});
const decimal = new Intl.NumberFormat("en", {maximumFractionDigits: 1});

export function fmtNumber(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  return Math.abs(n) >= 10 || Number.isInteger(n) ? integer.format(n) : decimal.format(n);
}

/** 1234567 -> "1.2 M", for axis labels. */
export function fmtCompact(n) {
  const abs = Math.abs(n);
  if (abs >= 1e9) return decimal.format(n / 1e9) + " G";
  if (abs >= 1e6) return decimal.format(n / 1e6) + " M";
  if (abs >= 1e4) return decimal.format(n / 1e3) + " k";
  return fmtNumber(n);
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n, unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${unit ? decimal.format(value) : integer.format(value)} ${units[unit]}`;
}

export function fmtPercent(n) {
  return n === null || n === undefined ? "–" : `${decimal.format(n)} %`;
}

const clock = new Intl.DateTimeFormat("en-GB", {hour: "2-digit", minute: "2-digit",
                                                second: "2-digit"});
const clockShort = new Intl.DateTimeFormat("en-GB", {hour: "2-digit", minute: "2-digit"});
const dateTime = new Intl.DateTimeFormat("en-GB", {year: "numeric", month: "short",
                                                   day: "2-digit", hour: "2-digit",
                                                   minute: "2-digit", second: "2-digit"});

export function fmtTime(t, withSeconds = true) {
  const d = t instanceof Date ? t : new Date(t);
  return (withSeconds ? clock : clockShort).format(d);
}

export function fmtDateTime(t) {
  return t ? dateTime.format(new Date(t)) : "–";
}

/** Seconds -> "3 d 4 h", "12 min", "40 s". */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function fmtAgo(t, now = Date.now()) {
  if (!t) return "never";
  const seconds = Math.max(0, (now - new Date(t).getTime()) / 1000);
  return seconds < 5 ? "just now" : `${fmtDuration(seconds)} ago`;
}

/** The UI address of a domain, queue or group: names are URL-encoded one segment each. */
export function uiPath(domain, queue, group) {
  let path = "/ui/domains/" + encodeURIComponent(domain);
  if (queue !== undefined && queue !== null) path += "/queues/" + encodeURIComponent(queue);
  if (group !== undefined && group !== null) path += "/groups/" + encodeURIComponent(group);
  return path;
}
