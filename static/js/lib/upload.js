// Uploads with progress: fetch() cannot report how much of a request body has gone out, so a
// large upload goes through XMLHttpRequest (upload.onprogress), with the same bearer-token
// handling as api.js's authFetch (ask on a 401, keep the token for the tab, retry).
import { ROOT, ApiError, TOKEN_REJECTED, askToken, storeToken, storedToken } from "./api.js";

function send(path, form, token, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", ROOT + path);
    xhr.setRequestHeader("Accept", "application/json");
    if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    };
    xhr.onload = () => {
      let body = null;
      try {
        body = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        body = { detail: xhr.responseText };
      }
      resolve({ status: xhr.status, body });
    };
    xhr.onerror = () => reject(new Error("the upload failed: the connection was closed (is the file over the server's limit?)"));
    xhr.onabort = () => reject(new Error("the upload was cancelled"));
    xhr.send(form);
  });
}

/**
 * POST a FormData to a JSON API route, reporting `onProgress(loadedBytes, totalBytes)` as the body
 * goes out; resolves to the decoded answer, rejects with ApiError (status, body) like api().
 */
export async function uploadForm(path, form, onProgress = () => {}) {
  let token = storedToken();
  let answer = await send(path, form, token, onProgress);
  while (answer.status === 401) {
    storeToken(null);
    token = await askToken(token ? TOKEN_REJECTED : "This server needs its access token (SSDBOARD_TOKEN) to upload.");
    if (!token) break;
    answer = await send(path, form, token, onProgress);
    if (answer.status !== 401) storeToken(token);
  }
  if (answer.status < 200 || answer.status >= 300) throw new ApiError(answer.status, answer.body);
  return answer.body;
}

/** "1.5 MB", "320 kB", "12 bytes". */
export function fmtBytes(n) {
  if (!Number.isFinite(n)) return "–";
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${Math.round(n / 1e3)} kB`;
  return `${n} bytes`;
}
