// datasets.html, the dataset registry: the table of datasets (GET /api/datasets, redrawn every
// 2 s while an import runs) and the upload form. An upload shows the bytes going out
// (XMLHttpRequest's upload.onprogress), then the import's progress, polling
// GET /api/datasets/{id} every 0.5 s until it is ready or failed.
import { api } from "../lib/api.js";
import { $, el, showMessage } from "../lib/dom.js";
import { fmtTime } from "../lib/format.js";
import { statusBadge } from "../lib/jobs.js";
import { datasetHref, fmtCount, formatName, importStage } from "../lib/datasets.js";
import { fmtBytes, uploadForm } from "../lib/upload.js";

const POLL_MS = 500;
const LIST_MS = 2000;
const body = $("datasets-body");

function row(d) {
  const counts = d.counts || {};
  const name = el("td", { class: "job-name" }, el("a", { href: datasetHref(d.id), text: d.name }));
  if (!d.builtin) name.append(el("span", { class: "muted id", text: ` #${d.id}` }));
  const status = el("td", {}, statusBadge(d.status));
  if (d.status === "importing" && d.progress) status.append(el("span", { class: "progress-label", text: importStage(d.progress) }));
  if (d.status === "failed") status.append(el("span", { class: "progress-label", text: d.error || "" }));
  return el(
    "tr",
    { dataset: { datasetId: d.id, status: d.status } },
    name,
    el("td", { text: formatName(d.format) }),
    el("td", { class: "num", text: d.builtin ? "generated" : fmtCount(counts.images) }),
    el("td", { class: "num", text: d.builtin ? "–" : fmtCount(counts.boxes) }),
    el("td", { class: "num", title: (d.classes || []).join(", "), text: d.classes ? d.classes.length : "–" }),
    status,
    el("td", { class: "time opt", title: d.created || "", text: d.builtin ? "built in" : fmtTime(d.created) }),
  );
}

let listTimer = null;

async function refresh() {
  try {
    const datasets = await api("/api/datasets");
    body.replaceChildren(...datasets.map(row));
    body.dataset.ready = "true";
    showMessage($("list-error"), "");
    clearTimeout(listTimer);
    if (datasets.some((d) => d.status === "importing")) listTimer = setTimeout(refresh, LIST_MS);
  } catch (err) {
    showMessage($("list-error"), `Could not load the datasets: ${err.message}`);
  }
}

function setProgress(fraction, text) {
  const pct = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
  $("upload-fill").style.width = `${pct}%`;
  $("upload-progress").setAttribute("aria-valuenow", String(pct));
  $("upload-stage").textContent = text;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function follow(id) {
  for (;;) {
    const d = await api(`/api/datasets/${encodeURIComponent(id)}`);
    if (d.status === "ready") return d;
    if (d.status === "failed") throw new Error(`The import failed: ${d.error}`);
    const p = d.progress || { done: 0, total: 1 };
    setProgress(p.total ? p.done / p.total : 0, `Importing ${d.name}: ${importStage(p)}`);
    await sleep(POLL_MS);
  }
}

async function upload(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  showMessage($("upload-error"), "");
  if (!file) {
    showMessage($("upload-error"), "Choose a .zip file first.");
    $("upload-file").focus();
    return;
  }
  const form = new FormData();
  // Fields first: the server checks them before it reads the file.
  if ($("upload-name").value.trim()) form.append("name", $("upload-name").value.trim());
  form.append("format", $("upload-format").value);
  form.append("val_fraction", $("upload-val").value || "0.1");
  form.append("file", file);
  $("upload-submit").disabled = true;
  $("upload-status").hidden = false;
  $("upload-link").hidden = true;
  $("upload-status").dataset.state = "uploading";
  setProgress(0, `Uploading ${file.name} (${fmtBytes(file.size)})…`);
  try {
    const started = await uploadForm("/api/datasets", form, (loaded, total) =>
      setProgress(loaded / total, `Uploading ${file.name}: ${fmtBytes(loaded)} of ${fmtBytes(total)}`),
    );
    $("upload-status").dataset.state = "importing";
    refresh();
    const ready = await follow(started.id);
    setProgress(1, `${ready.name} is ready: ${fmtCount(ready.counts.images)} images, ${fmtCount(ready.counts.boxes)} boxes.`);
    const link = $("upload-link");
    link.href = datasetHref(ready.id);
    link.hidden = false;
    $("upload-status").dataset.state = "ready";
    $("upload-form").reset();
  } catch (err) {
    $("upload-status").dataset.state = "failed";
    $("upload-status").hidden = true;
    showMessage($("upload-error"), err.message);
  } finally {
    $("upload-submit").disabled = false;
    refresh();
  }
}

$("upload-form").addEventListener("submit", upload);
refresh();
