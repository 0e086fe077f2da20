// Talking to the server: fetch() with the bearer token for state-changing requests, JSON API calls.
import { el } from "./dom.js";

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

export function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: ask every time
  }
}

export function storeToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled */
  }
}

/** What the token dialog says after the server refused the token it was given. */
export const TOKEN_REJECTED = "That token was not accepted. Try again:";

let pendingAsk = null;
let pendingText = null; // the open dialog's message

/** Ask for the token in a small modal; resolves to the token, or null when cancelled. */
export function askToken(message = "This server needs its access token (SSDBOARD_TOKEN) to change jobs.") {
  if (pendingAsk) {
    // Several requests failing at once share one dialog. One whose token was refused may come
    // second (the form's plan, sent without a token, opened it first): say the token was refused.
    if (message === TOKEN_REJECTED) pendingText.textContent = message;
    return pendingAsk;
  }
  const text = el("p", { text: message });
  const input = el("input", { type: "password", name: "token", autocomplete: "current-password", required: true });
  const dialog = el(
    "dialog",
    { class: "token-dialog" },
    el(
      "form",
      { method: "dialog" },
      text,
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
  pendingText = text;
  pendingAsk = new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const token = dialog.returnValue === "ok" ? input.value.trim() : "";
      dialog.remove();
      pendingAsk = null;
      pendingText = null;
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
    token = await askToken(token ? TOKEN_REJECTED : undefined);
    if (!token) return response;
    response = await send(token);
    if (response.status !== 401) storeToken(token);
  }
  return response;
}

/**
 * fetch() a JSON API route; resolves to the decoded body, rejects with ApiError. A FormData body
 * (an upload) is sent as multipart, anything else as JSON.
 */
export async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
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
