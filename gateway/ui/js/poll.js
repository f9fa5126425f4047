// Live refresh: run a task now and again `intervalMs` after each run ends, so two runs never
// overlap however slow the broker is. Nothing runs while the tab is hidden (it catches up at
// once when shown again), while paused, or after `signal` is aborted (the page was left).
//
//   const live = poll(async (signal) => draw(await api.get("/api/stats", {signal})),
//                     {intervalMs: 5000, signal: ctx.signal, onError: showError});
//   live.refresh(); live.pause(); live.resume();

import {isAbort} from "./api.js";

export function poll(task, {intervalMs = 5000, signal, onError = null, onState = null}) {
  let timer = 0, running = false, again = false, paused = false;

  function schedule() {
    clearTimeout(timer);
    if (!paused && !document.hidden && !signal.aborted) timer = setTimeout(run, intervalMs);
  }

  async function run() {
    clearTimeout(timer);
    if (signal.aborted) return;
    if (running) { again = true; return; }
    running = true;
    try {
      await task(signal);
      onError?.(null);
    } catch (err) {
      if (!isAbort(err) && !signal.aborted) {
        if (onError) onError(err);
        else console.error(err);
      }
    } finally {
      running = false;
    }
    if (again) { again = false; run(); return; }
    schedule();
  }

  function visibility() {
    if (document.hidden) clearTimeout(timer);
    else if (!paused) run();
  }

  document.addEventListener("visibilitychange", visibility);
  signal.addEventListener("abort", () => {
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", visibility);
  });
  const control = {
    /** Run now (after the run in progress, if any). */
    refresh: () => run(),
    pause() { paused = true; clearTimeout(timer); onState?.(control); },
    resume() { paused = false; onState?.(control); run(); },
    get paused() { return paused; },
    /** The first run, to await before the page counts as shown. */
    first: null,
  };
  control.first = run();
  return control;
}
