// SVG charts, drawn here without a library:
//   lineChart()  values over time: lines or areas, axes, a legend and a hover readout
//   fillBars()   horizontal bars for how full things are (queues), coloured by level
//   gauge()      one fraction as a half ring (shards up)
//   sparkline()  a tiny line beside a figure (a process's CPU)
// Colours come from app.css classes (series-0 … series-7, level-warning, …), so the charts
// follow the theme. Each returns DOM; lineChart returns {el, update(series)} and redraws in
// place, at the width its container has (and again when that changes).

import {fmtCompact, fmtNumber, fmtTime, h, mount, svg} from "./dom.js";

const MARGIN = {top: 10, right: 14, bottom: 24, left: 66};

/** A round step for about `count` ticks up to `max`: 1, 2 or 5 times a power of ten. */
export function niceStep(max, count = 4) {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
}

function ticksUpTo(max, byteAxis = false) {
  // Byte axes step in round KiB, MiB or GiB rather than round decimal numbers.
  const unit = byteAxis && max > 0 ? 1024 ** Math.max(0, Math.floor(Math.log(max) / Math.log(1024))) : 1;
  const step = niceStep(max / unit) * unit;
  const top = Math.max(step, Math.ceil(max / step) * step);
  const out = [];
  for (let v = 0; v <= top + step / 2; v += step) out.push(v);
  return {top, ticks: out};
}

function nearestPoint(points, t) {
  let best = null;
  for (const point of points) {
    if (best === null || Math.abs(point[0] - t) < Math.abs(best[0] - t)) best = point;
  }
  return best;
}

/**
 * options: {height, yFormat (axis labels), valueFormat (readout), label (for screen readers),
 * empty (text when there is no point), byteAxis (ticks at round KiB/MiB/GiB)}. series: [{name, key, points: [[time ms, value]],
 * area (fill under the line), total (shown in the legend)}]; series share their times.
 */
export function lineChart({height = 220, yFormat = fmtCompact, valueFormat = fmtNumber,
                           label = "chart", empty = "No data yet.", byteAxis = false} = {}) {
  const legend = h("div", {class: "chart-legend"});
  const plot = h("div", {class: "chart-plot"});
  const readout = h("div", {class: "chart-readout", hidden: true});
  const el = h("div", {class: "chart"}, legend, plot);
  let series = [], drawnWidth = 0;

  function drawLegend() {
    mount(legend, series.map((s, i) => h("span", {
      class: "legend-item", dataset: {series: s.key || s.name, total: s.total ?? ""}},
      h("span", {class: `swatch series-${s.color ?? i}`}), s.name,
      s.total === undefined ? null : h("strong", null, ` ${fmtNumber(s.total)}`))));
  }

  function draw() {
    const width = Math.max(240, Math.floor(plot.clientWidth || 600));
    drawnWidth = width;
    // Series may be sampled at their own times (one per process): the axis spans them all,
    // the readout shows each one's sample nearest to the pointer.
    const times = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
    if (!times.length) {
      mount(plot, h("p", {class: "empty chart-empty"}, empty));
      return;
    }
    const innerW = width - MARGIN.left - MARGIN.right;
    const innerH = height - MARGIN.top - MARGIN.bottom;
    const t0 = times[0], t1 = times[times.length - 1];
    const max = Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1])));
    const {top, ticks} = ticksUpTo(max, byteAxis);
    const x = (t) => MARGIN.left + (t1 === t0 ? innerW / 2 : ((t - t0) / (t1 - t0)) * innerW);
    const y = (v) => MARGIN.top + innerH - (v / top) * innerH;

    const grid = ticks.map((v) => [
      svg("line", {class: "gridline", x1: MARGIN.left, x2: width - MARGIN.right, y1: y(v), y2: y(v)}),
      svg("text", {class: "axis-label", x: MARGIN.left - 6, y: y(v) + 4, "text-anchor": "end"},
          yFormat(v)),
    ]);
    const spanMs = t1 - t0;
    const xCount = Math.min(times.length, Math.max(2, Math.floor(innerW / 110)));
    const xTicks = [];  // evenly in time: samples of several processes come at uneven times
    for (let i = 0; i < xCount; i++) xTicks.push(t0 + (i * (t1 - t0)) / Math.max(1, xCount - 1));
    const xLabels = [...new Set(xTicks)].map((t, i, all) => svg("text", {
      class: "axis-label", x: x(t), y: height - 6,
      "text-anchor": all.length === 1 ? "middle" : i === 0 ? "start" : i === all.length - 1 ? "end" : "middle"},
      fmtTime(t, spanMs < 15 * 60 * 1000)));
    const shapes = series.map((s, i) => {
      if (!s.points.length) return null;
      const line = s.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
      const base = y(0).toFixed(1);
      const first = x(s.points[0][0]).toFixed(1), last = x(s.points[s.points.length - 1][0]).toFixed(1);
      const sum = s.points.reduce((acc, p) => acc + p[1], 0);
      const color = `series-${s.color ?? i}`;
      return [
        s.area ? svg("path", {class: `area ${color}`, d: `${line}L${last},${base}L${first},${base}Z`}) : null,
        svg("path", {class: `line ${color}`, d: line,
                     dataset: {series: s.key || s.name, points: s.points.length,
                               sum: String(sum), max: String(Math.max(...s.points.map((p) => p[1])))}}),
      ];
    });
    const guide = svg("line", {class: "guide", y1: MARGIN.top, y2: MARGIN.top + innerH,
                               visibility: "hidden"});
    const dots = series.map((s, i) => svg("circle", {class: `dot series-${s.color ?? i}`, r: 3.5,
                                                     visibility: "hidden"}));
    const overlay = svg("rect", {class: "overlay", x: MARGIN.left, y: MARGIN.top,
                                 width: innerW, height: innerH});
    const chart = svg("svg", {class: "chart-svg", width, height, viewBox: `0 0 ${width} ${height}`,
                              role: "img", "aria-label": label},
                      grid, xLabels, shapes, guide, dots, overlay);

    function hover(event) {
      const box = chart.getBoundingClientRect();
      const px = event.clientX - box.left;
      const t = t0 + ((px - MARGIN.left) / innerW) * (t1 - t0);
      let index = 0;
      for (let j = 1; j < times.length; j++) {
        if (Math.abs(times[j] - t) < Math.abs(times[index] - t)) index = j;
      }
      const at = times[index], gx = x(at);
      guide.setAttribute("x1", gx);
      guide.setAttribute("x2", gx);
      guide.setAttribute("visibility", "visible");
      const nearest = series.map((s) => nearestPoint(s.points, at));
      series.forEach((s, i) => {
        const point = nearest[i];
        if (!point) return;
        dots[i].setAttribute("cx", x(point[0]));
        dots[i].setAttribute("cy", y(point[1]));
        dots[i].setAttribute("visibility", "visible");
      });
      mount(readout, h("div", {class: "readout-time"}, fmtTime(at)),
            series.map((s, i) => h("div", {class: "readout-row", dataset: {series: s.key || s.name}},
              h("span", {class: `swatch series-${s.color ?? i}`}), `${s.name} `,
              h("strong", null, nearest[i] ? valueFormat(nearest[i][1]) : "–"))));
      readout.hidden = false;
      const left = gx + 12 + readout.offsetWidth > width ? gx - 12 - readout.offsetWidth : gx + 12;
      readout.style.left = `${Math.max(0, left)}px`;
      readout.style.top = `${MARGIN.top}px`;
    }
    function leave() {
      readout.hidden = true;
      guide.setAttribute("visibility", "hidden");
      dots.forEach((dot) => dot.setAttribute("visibility", "hidden"));
    }
    overlay.addEventListener("pointermove", hover);
    overlay.addEventListener("pointerleave", leave);
    mount(plot, chart, readout);
  }

  // Redraw when the container's width changes (a window resize), a frame later, so that the
  // observer never sees a change it caused itself.
  const observer = new ResizeObserver(() => requestAnimationFrame(() => {
    if (series.length && Math.floor(plot.clientWidth) !== drawnWidth) draw();
  }));
  observer.observe(plot);

  return {
    el,
    update(next) {
      series = next;
      drawLegend();
      draw();
    },
    disconnect() { observer.disconnect(); },
  };
}

/** "warning" at 75 %, "critical" at 90 %: the broker's own alert levels. */
export function fillLevel(percent) {
  return percent >= 90 ? "critical" : percent >= 75 ? "warning" : "ok";
}

/**
 * items: [{label, href, percent, text}]: one row each, a link and a bar to 100 %.
 */
export function fillBars(items, {empty = "Nothing to show."} = {}) {
  if (!items.length) return h("p", {class: "empty"}, empty);
  return h("ul", {class: "fill-bars"}, items.map((item) => {
    const percent = Math.max(0, Math.min(100, item.percent));
    const level = fillLevel(item.percent);
    return h("li", {class: "fill-row", dataset: {level, label: item.label}},
      item.href ? h("a", {href: item.href, class: "fill-label"}, item.label)
        : h("span", {class: "fill-label"}, item.label),
      svg("svg", {class: "fill-bar", viewBox: "0 0 100 10", preserveAspectRatio: "none",
                  role: "img", "aria-label": `${item.label} ${fmtNumber(item.percent)} % full`},
          svg("rect", {class: "fill-track", x: 0, y: 0, width: 100, height: 10, rx: 2}),
          svg("rect", {class: `fill-value level-${level}`, x: 0, y: 0, width: percent, height: 10,
                       rx: 2})),
      h("span", {class: "fill-text"}, `${fmtNumber(item.percent)} %`,
        item.text ? h("small", null, ` ${item.text}`) : null));
  }));
}

/** value of max as a half ring, with the figure in the middle. */
export function gauge(value, max, {label = "", level = null} = {}) {
  const fraction = max > 0 ? Math.max(0, Math.min(1, value / max)) : 0;
  const r = 40, cx = 50, cy = 50;
  const angle = Math.PI * (1 - fraction);
  const ex = cx + r * Math.cos(angle), ey = cy - r * Math.sin(angle);
  const track = `M${cx - r},${cy} A${r},${r} 0 0 1 ${cx + r},${cy}`;
  const arc = fraction > 0 ? `M${cx - r},${cy} A${r},${r} 0 0 1 ${ex.toFixed(2)},${ey.toFixed(2)}` : "";
  return svg("svg", {class: "gauge", viewBox: "0 0 100 58", role: "img",
                     "aria-label": `${label} ${value} of ${max}`},
             svg("path", {class: "gauge-track", d: track}),
             arc ? svg("path", {class: `gauge-value level-${level || "ok"}`, d: arc}) : null);
}

/** values: numbers, oldest first. */
export function sparkline(values, {width = 96, height = 24, color = 0, label = ""} = {}) {
  const points = values.filter((v) => typeof v === "number");
  const chart = svg("svg", {class: "sparkline", width, height, viewBox: `0 0 ${width} ${height}`,
                            role: "img", "aria-label": label});
  if (points.length < 2) return chart;
  const max = Math.max(...points) || 1;
  const step = width / (points.length - 1);
  const d = points.map((v, i) => `${i ? "L" : "M"}${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`).join("");
  chart.append(svg("path", {class: `line series-${color}`, d}));
  return chart;
}
