// The app's start: ask the broker whether sign-in is needed (GET /api/health answers that
// without a credential), build the layout, start the router.

import {api, onUnauthorized, session} from "./api.js";
import {createLayout} from "./layout.js";
import {here, navigate, startRouter} from "./router.js";
import {notFound, routes} from "./routes.js";
import {errorNotice} from "./components.js";
import {mount} from "./dom.js";

async function start() {
  const root = document.getElementById("app");
  try {
    // 503 "degraded" still says what is needed: the UI starts and pages show what is down.
    const health = await api.get("/api/health", {anonymous: true, accept: [503]});
    session.authentication = Boolean(health.authentication);
    session.nodeId = health.nodeId || "";
    session.version = health.version || "";
  } catch (err) {
    mount(root, errorNotice(err));
    return;
  }
  const layout = createLayout(root, {onSignOut() {
    session.clear();
    navigate("/ui/signin");
  }});
  onUnauthorized(() => {
    if (!location.pathname.startsWith("/ui/signin")) {
      navigate(`/ui/signin?next=${encodeURIComponent(here())}`, {replace: true});
    }
  });
  await startRouter({routes, notFound, layout});
}

start();
