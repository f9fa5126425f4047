// The one place that talks to the broker's HTTP API: JSON in and out, errors as ApiError
// (the API's {"error", "message"} shape), the signed-in user's token.
//
//   import {api, ApiError, isAbort} from "../api.js";
//   const stats = await api.get("/api/stats", {query: {period: "1h"}, signal: ctx.signal});
//   await api.post("/api/domains", {name: "orders"});
//
// The token lives in sessionStorage (one tab's session: it goes when the tab closes, and
// other sites' scripts cannot read it); it is sent as "Authorization: Bearer". A 401 on any
// call but a sign-in ends the session and calls the handler the app set with
// onUnauthorized() (it shows the sign-in page, then comes back).

const SESSION_KEY = "gortms.session";

export class ApiError extends Error {
  /** status: the HTTP status (0: the broker could not be reached); code: the API's code. */
  constructor(status, code, message, body = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** True for the error a fetch throws when its page was left (ctx.signal aborted). */
export function isAbort(err) {
  return err?.name === "AbortError";
}

// --- session --------------------------------------------------------------------------------

export const session = {
  authentication: false,  // from GET /api/health, set once at start (main.js)
  nodeId: "",
  version: "",

  current() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
      if (saved && saved.expiresAt && saved.expiresAt * 1000 <= Date.now()) {
        this.clear();  // expired: the next call would be a 401 anyway
        return null;
      }
      return saved;
    } catch {
      return null;
    }
  },
  /** {token, expiresAt, user} as POST /api/auth/login answers. */
  save(login) {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(
      {token: login.token, expiresAt: login.expiresAt, user: login.user}));
  },
  clear() {
    sessionStorage.removeItem(SESSION_KEY);
  },
  /** Whether pages that need a credential can be shown. */
  signedIn() {
    return !this.authentication || this.current() !== null;
  },
};

let unauthorized = () => {};

/** handler(error) runs after a 401 ended the session. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

// --- requests -------------------------------------------------------------------------------

function url(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function decode(response) {
  const type = response.headers.get("content-type") || "";
  if (response.status === 204 || response.status === 304) return null;
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }
  return await response.text();
}

/**
 * options: body (JSON-encoded unless a string), query (object), signal, headers,
 * anonymous (send no token, and a 401 does not end the session: sign-in, account requests).
 * Resolves to the decoded body; throws ApiError for any status >= 400.
 */
export async function request(method, path, options = {}) {
  const headers = {Accept: "application/json", ...(options.headers || {})};
  let body;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    headers["Content-Type"] = headers["Content-Type"] || "application/json";
  }
  const saved = options.anonymous ? null : session.current();
  if (saved) headers.Authorization = `Bearer ${saved.token}`;
  let response;
  try {
    response = await fetch(url(path, options.query), {method, headers, body,
                                                      signal: options.signal});
  } catch (err) {
    if (isAbort(err)) throw err;
    throw new ApiError(0, "unreachable", `cannot reach the broker (${err.message})`);
  }
  const data = await decode(response);
  if (response.ok || (options.accept || []).includes(response.status)) return data;
  const code = data?.error || `http_${response.status}`;
  const message = data?.message || `${method} ${path} answered ${response.status}`;
  const error = new ApiError(response.status, code, message, data);
  if (response.status === 401 && !options.anonymous && session.authentication) {
    session.clear();
    unauthorized(error);
  }
  throw error;
}

export const api = {
  get: (path, options) => request("GET", path, options),
  post: (path, body, options) => request("POST", path, {...options, body}),
  put: (path, body, options) => request("PUT", path, {...options, body}),
  patch: (path, body, options) => request("PATCH", path, {...options, body}),
  del: (path, options) => request("DELETE", path, options),
};

/** /api/domains/{d}/queues/{q}/consumer-groups/{g}: names encoded one segment each. */
export function apiPath(domain, queue, group) {
  let path = "/api/domains/" + encodeURIComponent(domain);
  if (queue !== undefined && queue !== null) path += "/queues/" + encodeURIComponent(queue);
  if (group !== undefined && group !== null) {
    path += "/consumer-groups/" + encodeURIComponent(group);
  }
  return path;
}
