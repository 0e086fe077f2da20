// Shared helpers for the pages: API calls and formatting. No framework, no build step.

/** Prefix of every URL, for a server mounted below "/" (set by the template). */
export const ROOT = document.body.dataset.root || "";

/** An API error carrying the HTTP status and the decoded JSON body (if any). */
export class ApiError extends Error {
  constructor(status, body) {
    super(describeError(status, body));
    this.status = status;
    this.body = body;
  }
}

function describeError(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg).join("; ");
  return `HTTP ${status}`;
}

// Access token: a server started with SSDBOARD_TOKEN answers 401 to a state-changing request
// without "Authorization: Bearer <token>". The page asks once and keeps the token for the tab's
// session (sessionStorage: gone when the tab closes, never sent to other sites).
const TOKEN_KEY = "ssdboard.token";
const STATE_CHANGING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: ask every time
  }
}

function storeToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled */
  }
}

let pendingAsk = null;

/** Ask for the token in a small modal; resolves to the token, or null when cancelled. */
export function askToken(message = "This server needs its access token (SSDBOARD_TOKEN) to change jobs.") {
  if (pendingAsk) return pendingAsk; // several requests failing at once share one dialog
  const input = el("input", { type: "password", name: "token", autocomplete: "current-password", required: true });
  const dialog = el(
    "dialog",
    { class: "token-dialog" },
    el(
      "form",
      { method: "dialog" },
      el("p", { text: message }),
      el("label", {}, "Token ", input),
      el(
        "menu",
        {},
        el("button", { type: "submit", value: "ok", class: "primary" }, "Use token"),
        el("button", { type: "submit", value: "cancel", formnovalidate: true }, "Cancel"),
      ),
    ),
  );
  document.body.append(dialog);
  pendingAsk = new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const token = dialog.returnValue === "ok" ? input.value.trim() : "";
      dialog.remove();
      pendingAsk = null;
      resolve(token || null);
    });
  });
  dialog.showModal();
  input.focus();
  return pendingAsk;
}

/**
 * fetch() that adds the stored bearer token to state-changing requests; on a 401 it asks for the
 * token (once per failure), stores it and retries. Use it for every request that changes state,
 * also for bodies that are not JSON (uploads: pass a FormData body).
 */
export async function authFetch(url, init = {}) {
  const method = (init.method || "GET").toUpperCase();
  if (!STATE_CHANGING.has(method)) return fetch(url, init);
  const send = (token) => {
    const headers = new Headers(init.headers || {});
    if (token) headers.set("Authorization", `Bearer ${token}`);
    return fetch(url, { ...init, headers });
  };
  let token = storedToken();
  let response = await send(token);
  while (response.status === 401) {
    storeToken(null);
    token = await askToken(token ? "That token was not accepted. Try again:" : undefined);
    if (!token) return response;
    response = await send(token);
    if (response.status !== 401) storeToken(token);
  }
  return response;
}

/** fetch() a JSON API route; resolves to the decoded body, rejects with ApiError. */
export async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await authFetch(ROOT + path, init);
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text };
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const TERMINAL = new Set(["succeeded", "failed", "cancelled", "interrupted"]);

/** Loss components in chart order; the colours are shared by list and charts. */
export const LOSS_KEYS = ["pos_clf", "neg_clf", "loc", "total"];
export const LOSS_COLORS = { pos_clf: "#2563eb", neg_clf: "#d97706", loc: "#059669", total: "#374151" };

/** A loss in a table column: three decimals so the column aligns; exponent when tiny or huge. */
export function fmtLoss(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e4)) return value.toExponential(2);
  return value.toFixed(3);
}

/** "1 h 02 min", "3 min 05 s", "12 s". */
export function fmtDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m) return `${m} min ${String(r).padStart(2, "0")} s`;
  return `${r} s`;
}

/** Parse an ISO time from the API; naive strings are UTC. */
export function parseTime(iso) {
  if (!iso) return null;
  const hasZone = /[zZ]|[+-]\d\d:?\d\d$/.test(iso);
  const t = Date.parse(hasZone ? iso : iso + "Z");
  return Number.isNaN(t) ? null : new Date(t);
}

/** Local "2024-05-01 14:03" for a timestamp, with a relative "3 min ago" when recent. */
export function fmtTime(iso) {
  const d = parseTime(iso);
  if (!d) return "–";
  const pad = (n) => String(n).padStart(2, "0");
  const abs = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const ago = (Date.now() - d.getTime()) / 1000;
  if (ago >= 0 && ago < 3600) return `${fmtDuration(ago).replace(/ \d+ s$/, "")} ago`;
  return abs;
}

/** document.createElement with attributes and children, to keep DOM code short. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A status badge element. */
export function statusBadge(status) {
  return el("span", { class: `badge status-${status}`, text: status });
}

/** The fraction of a job done, 0..1. */
export function progressOf(job) {
  if (!job.total_steps) return 0;
  return Math.min(1, Math.max(0, (job.step || 0) / job.total_steps));
}
