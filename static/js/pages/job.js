// job.html, one job: header, progress, live loss and mAP charts, config, cancel/resume/delete.
//
// On load the page fetches the job and its metric history (GET .../metrics, downsampled for
// long jobs), draws it, then opens the Server-Sent Events stream with ?after_step=<last step>
// for everything newer. EventSource reconnects by itself with Last-Event-ID; records already
// drawn are skipped by step, so a replay never draws a point twice. A resume restarts training
// at the checkpoint's step (the server drops later metrics): the page then redraws from the
// store (resync).
import { ROOT, api } from "../lib/api.js";
import { $, el, showMessage } from "../lib/dom.js";
import { fmtDuration, parseTime } from "../lib/format.js";
import { mountMetaEditor } from "../lib/job_meta.js";
import { TERMINAL, progressOf } from "../lib/jobs.js";
import { LiveChart } from "../lib/plots.js";

const HISTORY_POINTS = 3000; // downsampling target for the history of a long job
const CHART_POINTS = 6000; // per trace; beyond this the loss chart halves its points
const RATE_WINDOW_S = 30; // steps/s is measured over the last this-many seconds of steps

/** The series of the two charts, in legend order, with their colours. */
const LOSS_COLORS = { pos_clf: "#2563eb", neg_clf: "#d97706", loc: "#059669", total: "#374151" };
const MAP_SERIES = [
  { key: "map50", name: "mAP@.5", color: "#7c3aed" },
  { key: "map", name: "mAP@[.5:.95]", color: "#db2777" },
];

const root = $("job-root");
const jobId = root.dataset.jobId;
const jobUrl = `/api/jobs/${encodeURIComponent(jobId)}`;

let job = null;
let source = null;
let lastStep = -1; // highest step drawn
let lastEvalStep = -1;
let recent = []; // [{step, time}] of the last RATE_WINDOW_S seconds, for steps/s and ETA

const smoothingInput = $("smoothing");
const lossChart = new LiveChart(
  $("loss-chart"),
  Object.entries(LOSS_COLORS).map(([key, color]) => ({ key, name: key, color })),
  { smoothable: true, smoothing: Number(smoothingInput.value), yTitle: "loss", maxPoints: CHART_POINTS },
);
const mapChart = new LiveChart(
  $("map-chart"),
  MAP_SERIES,
  { mode: "lines+markers", yTitle: "mAP", yFromZero: true, emptyYRange: [0, 1] },
);
lossChart.onDraw = () => {
  $("loss-empty").hidden = true;
  renderProgress();
};
mapChart.onDraw = () => ($("map-empty").hidden = true);

// ---- chart controls -----------------------------------------------------------------------

smoothingInput.addEventListener("input", () => {
  const w = Number(smoothingInput.value);
  $("smoothing-value").textContent = w.toFixed(2);
  lossChart.setSmoothing(w);
});
$("log-scale").addEventListener("change", (e) => lossChart.setLogScale(e.target.checked));

// ---- incoming records ---------------------------------------------------------------------

function addStep(record) {
  if (record.step <= lastStep) return; // already drawn (replay after reconnect)
  lastStep = record.step;
  lossChart.push(record);
  if (typeof record.time === "number") {
    recent.push({ step: record.step, time: record.time });
    const cutoff = record.time - RATE_WINDOW_S;
    while (recent.length > 2 && recent[0].time < cutoff) recent.shift();
  }
  if (job && record.step > (job.step || 0)) job.step = record.step;
}

function addEval(record) {
  if (record.step <= lastEvalStep) return;
  lastEvalStep = record.step;
  mapChart.push(record);
  if (root.dataset.ready === "true") loadHealth(); // a new evaluation: the overfitting check may change
}

// ---- health -------------------------------------------------------------------------------

const HEALTH_TITLES = {
  no_positive_priors: "Steps with no positive prior",
  loss_diverged: "Loss diverged or went NaN",
  overfitting: "Overfitting",
  unmatched_boxes: "Boxes no prior can match",
  boxes_below_smallest_prior: "Boxes smaller than the smallest prior",
  rare_classes: "Classes with few boxes",
  train_val_overlap: "Same image in train and val",
};
const HEALTH_EVERY_MS = 30_000; // while the job can change; and after each evaluation
let healthTimer = null;

/** The run's health checks (GET /api/jobs/{id}/health): problems first, each with its evidence and advice. */
async function loadHealth() {
  let data;
  try {
    data = await api(`${jobUrl}/health`);
  } catch (err) {
    $("health-list").replaceChildren(el("li", { class: "muted", text: `Could not check: ${err.message}` }));
    return;
  }
  const order = { fail: 0, warn: 1, ok: 2, skipped: 3 };
  const checks = [...data.checks].sort((a, b) => order[a.status] - order[b.status]);
  $("health-list").replaceChildren(...checks.map((c) => el("li", { class: `health-item health-${c.status}`, "data-check": c.check },
    el("span", { class: `badge health-badge health-${c.status}`, text: c.status }),
    el("span", { class: "health-title", text: HEALTH_TITLES[c.check] ?? c.check }),
    el("span", { class: "health-evidence", text: c.evidence }),
    c.advice ? el("span", { class: "health-advice", text: `Try: ${c.advice}` }) : null,
  )));
  $("health-when").textContent = `at step ${data.step}`;
  $("health-card").dataset.ready = "true";
  clearTimeout(healthTimer);
  if (!TERMINAL.has(data.status)) healthTimer = setTimeout(loadHealth, HEALTH_EVERY_MS);
}

// ---- rendering ----------------------------------------------------------------------------

function renderJob() {
  $("job-name").textContent = job.name || `Job ${job.id}`;
  document.title = `${job.name || "Job " + job.id} · ssdboard`;
  const badge = $("job-status");
  // A running job whose worker waits (e.g. for a Ray cluster's room for its other workers)
  // has not started training: say so, and why, rather than show a run that does not move.
  const waiting = job.status === "running" && job.waiting;
  badge.textContent = waiting ? "waiting" : job.status;
  badge.className = `badge status-${waiting ? "queued" : job.status}`;
  $("job-waiting").hidden = !waiting;
  $("job-waiting").textContent = waiting ? `Not training yet: ${job.waiting}.` : "";
  root.dataset.status = job.status;
  // How it computes, once the worker said (run.json): "mixed_bfloat16 (auto: AMD EPYC has AVX512-BF16)".
  let run = job.run ? ` · ${job.run.precision} (${job.run.precision_reason})` : "";
  if (job.run && job.run.xla) run += ` · XLA ${job.run.xla} (${job.run.xla_reason})`;
  if (job.run && Number(job.run.loader_processes) > 0) run += ` · ${job.run.loader_processes} loader processes`;
  if (job.run && job.run.placement) run += ` · ${job.run.placement}`;
  $("job-summary").textContent = summarize(job.config || {}) + run;
  nameDataset(job.config && job.config.data && job.config.data.dataset);
  if (job.sweep_id) {
    const href = `${ROOT}/sweeps/${encodeURIComponent(job.sweep_id)}`;
    $("job-summary").append(" · ", el("a", { href, id: "sweep-link", style: "text-decoration: underline", text: `sweep ${job.sweep_id}` }));
  }

  renderWeights();

  const failed = job.status === "failed" && job.error;
  $("job-error").hidden = !failed;
  $("job-error-text").textContent = failed ? job.error : "";
  const trace = failed && job.run && job.run.traceback;
  $("job-traceback").hidden = !trace;
  $("job-traceback-text").textContent = trace || "";

  const active = job.status === "queued" || job.status === "running";
  const cancelling = active && job.cancel_requested;
  $("cancel-btn").disabled = !active || cancelling;
  $("cancel-btn").textContent = cancelling ? "Cancelling…" : "Cancel";
  $("resume-btn").disabled = !["cancelled", "interrupted", "failed"].includes(job.status);
  $("delete-btn").disabled = active; // the server refuses to delete a queued or running job
  renderExport();
  renderProgress();
}

/**
 * Where the weights started (model.init, run.json's "init"), the best evaluation the detections
 * and exports use, and why early stopping ended the run.
 */
function renderWeights() {
  const parts = [];
  const run = job.run || {};
  if (run.init && !run.init.startsWith("none")) parts.push(`started from ${run.init}`);
  const best = job.best || {};
  if (best.map50 !== null && best.map50 !== undefined) {
    parts.push(`best mAP@.5 ${Number(best.map50).toFixed(3)} at step ${best.map50_step}: the weights detections and exports use`);
  }
  if (run.stop_reason) parts.push(run.stop_reason);
  if (run.time_budget) parts.push(`time budget: ${run.time_budget}`);
  const line = $("job-weights");
  line.replaceChildren();
  for (const [i, text] of parts.entries()) line.append(i ? " · " : "", text);
  if (run.init_new && run.init_new !== "none") {
    const details = el("details", { class: "init-details" }, el("summary", { text: "layers" }),
      el("p", { text: `Loaded: ${run.init_loaded}` }), el("p", { text: `New: ${run.init_new}` }));
    line.append(" ", details);
  }
  if (run.recipe) {
    const choices = run.recipe.split("\n");
    const details = el("details", { class: "recipe-details", id: "recipe-details" },
      el("summary", { text: `${choices.length} choice${choices.length === 1 ? "" : "s"} fitted to the data` }),
      el("ul", {}, ...choices.map((text) => el("li", { text }))));
    line.append(parts.length ? " · " : "", details);
  }
  line.hidden = parts.length === 0 && !run.recipe;
  const ready = job.checkpoint_step !== null && job.checkpoint_step !== undefined;
  const link = $("finetune-link");
  if (ready) link.href = `${ROOT}/jobs/new?from=${encodeURIComponent(job.id)}&fine_tune=1`;
  else link.removeAttribute("href");
  link.setAttribute("aria-disabled", String(!ready));
  link.title = ready ? `A new job that starts from this run's best weights (model.init = job:${job.id})` : "No checkpoint yet";
}

/** The export link: the chosen format of the latest checkpoint, none before the first one (409). */
function renderExport() {
  const link = $("export-link");
  const format = $("export-format").value;
  const ready = job.checkpoint_step !== null && job.checkpoint_step !== undefined;
  if (ready) link.href = `${ROOT}${jobUrl}/export?format=${encodeURIComponent(format)}`;
  else link.removeAttribute("href");
  link.setAttribute("aria-disabled", String(!ready));
  link.title = ready ? `Download the checkpoint of step ${job.checkpoint_step} as ${format}` : "No checkpoint yet";
}

const datasetNames = new Map(); // an imported dataset's id -> its name, once looked up

/** Look up the name of the job's imported dataset once, then show the summary with it. */
async function nameDataset(id) {
  if (!id || id === "mnist" || datasetNames.has(id)) return;
  datasetNames.set(id, id);
  try {
    const d = await api(`/api/datasets/${encodeURIComponent(id)}`);
    datasetNames.set(id, d.name);
    renderJob();
  } catch {
    // removed since: the id is all there is
  }
}

/** One line: "image 128 px · batch 32 · 1200 steps · lr 0.001 cosine · norm3_2, norm4_2 · seed 0". */
function summarize(c) {
  const parts = [];
  if (c.data) {
    parts.push(`image ${c.data.image_size} px`);
    // The generator's digits only for the generator: an imported dataset is named instead.
    if (!c.data.dataset || c.data.dataset === "mnist") parts.push(`${c.data.min_digits}–${c.data.max_digits} digits`);
    else parts.push(`dataset ${datasetNames.get(c.data.dataset) ?? c.data.dataset}`);
  }
  if (c.train) parts.push(`batch ${c.train.batch_size}`, `${c.train.steps} steps`, `lr ${c.train.learning_rate} ${c.train.schedule || ""}`.trim());
  if (c.model) {
    const net = c.model.backbone && c.model.backbone !== "notebook" ? c.model.backbone : `${c.model.num_units} units`;
    parts.push(net, (c.model.source_layers || []).join(", "));
  }
  if (c.priors && c.priors.ratios) {
    const shapes = c.priors.scales.flat().length * c.priors.ratios.length;
    parts.push(`${shapes} prior shape${shapes === 1 ? "" : "s"} per cell`);
  }
  if (c.seed !== undefined) parts.push(`seed ${c.seed}`);
  return parts.join(" · ");
}

function renderProgress() {
  if (!job) return;
  const step = Math.max(job.step || 0, lastStep, 0);
  const total = job.total_steps || 0;
  const fill = $("progress-fill");
  fill.style.width = `${(progressOf({ step, total_steps: total }) * 100).toFixed(2)}%`;
  fill.className = `progress-fill status-${job.status}`;
  $("progress-steps").textContent = `step ${step} / ${total || "?"}`;

  let rateText = "";
  let etaText = "";
  if (job.status === "running" && recent.length >= 2) {
    const a = recent[0];
    const b = recent[recent.length - 1];
    const rate = (b.step - a.step) / Math.max(b.time - a.time, 1e-6);
    if (rate > 0) {
      rateText = `${rate >= 10 ? rate.toFixed(0) : rate.toFixed(2)} steps/s`;
      etaText = `${fmtDuration((total - step) / rate)} left`;
    }
  } else if (job.status === "queued") {
    etaText = "waiting for a worker";
  }
  const m = job.last_metrics;
  if (m && m.images_per_sec && job.status === "running") rateText += ` · ${m.images_per_sec.toFixed(0)} img/s`;
  $("progress-rate").textContent = rateText;
  $("progress-eta").textContent = etaText;

  const started = parseTime(job.started_at);
  const finished = parseTime(job.finished_at);
  let times = "";
  if (started) {
    const end = finished || (TERMINAL.has(job.status) ? null : new Date());
    times = end ? `ran ${fmtDuration((end - started) / 1000)}` : "";
  }
  if (job.checkpoint_step !== null && job.checkpoint_step !== undefined) times += `${times ? " · " : ""}checkpoint at step ${job.checkpoint_step}`;
  $("progress-times").textContent = times;
}

function renderConfig(config) {
  const view = $("config-view");
  const top = [];
  const sections = [];
  for (const [key, value] of Object.entries(config || {})) {
    if (value && typeof value === "object" && !Array.isArray(value)) sections.push([key, value]);
    else top.push([key, value]);
  }
  const table = (title, entries) =>
    el(
      "div",
      { class: "config-section" },
      el("h3", { text: title }),
      el("table", {}, el("tbody", {}, ...entries.map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", {}, el("code", { text: configValue(v) })))))),
    );
  view.replaceChildren(table("general", top), ...sections.map(([name, values]) => table(name, Object.entries(values))));
  const copy = el("button", { type: "button", class: "button small", text: "Copy as JSON" });
  copy.addEventListener("click", async () => {
    await navigator.clipboard?.writeText(JSON.stringify(config, null, 2));
    copy.textContent = "Copied";
  });
  view.append(el("div", { class: "config-actions" }, copy));
}

/** A config value for reading: bare strings, lists as "a, b" or "[[10, 16], [25]]". */
function configValue(v) {
  if (typeof v === "string") return v;
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v.join(", ");
  return JSON.stringify(v).replace(/,/g, ", ");
}

function showActionError(message) {
  showMessage($("action-error"), message);
}

// ---- stream -------------------------------------------------------------------------------

let resyncedThrough = 0; // id of the last status event that made us reload the history

function openStream() {
  if (source) return;
  // Steps count from 1: after_step=0 replays every step but only the newest status.
  source = new EventSource(`${ROOT}${jobUrl}/events?after_step=${Math.max(lastStep, 0)}`);
  source.addEventListener("step", (e) => addStep(JSON.parse(e.data)));
  source.addEventListener("eval", (e) => addEval(JSON.parse(e.data)));
  source.addEventListener("status", (e) => onStatus(JSON.parse(e.data), Number(e.lastEventId) || 0));
  source.addEventListener("open", () => root.classList.remove("stream-down"));
  source.addEventListener("error", () => {
    // CONNECTING: the browser retries by itself. CLOSED: it gave up (e.g. a 404).
    root.classList.add("stream-down");
    if (source && source.readyState === EventSource.CLOSED) {
      source = null;
      setTimeout(refreshJob, 3000);
    }
  });
}

function closeStream() {
  if (source) source.close();
  source = null;
  root.classList.remove("stream-down");
}

async function onStatus(data, eventId) {
  if (!job || !data.status) return;
  // A status with a step earlier than what is drawn: training restarted from a checkpoint
  // (a resume), so points after that step were dropped on the server. Redraw from the store,
  // once per such event (the new stream replays the same event).
  if (typeof data.step === "number" && data.step < lastStep && eventId > resyncedThrough) {
    resyncedThrough = eventId;
    await resync();
    return;
  }
  if (typeof data.total_steps === "number" || "waiting" in data) {
    await refreshJob(); // a time budget's plan, or the worker waits (or waits no more): say so
    return;
  }
  if (data.status === job.status && !TERMINAL.has(data.status)) return;
  // The stream replays the newest status, which may predate what /metrics returned: the
  // job's current state comes from the API before the stream is closed.
  await refreshJob();
}

/** Fetch the job, redraw it, and keep the stream open exactly while the job can change. */
async function refreshJob() {
  try {
    job = await api(jobUrl);
  } catch (err) {
    showActionError(`Could not refresh the job: ${err.message}`);
    return;
  }
  renderJob();
  if (TERMINAL.has(job.status)) {
    lossChart.flush();
    closeStream(); // nothing more will come; a reconnect would only replay
  } else {
    openStream();
  }
}

/** The metric history from GET .../metrics (downsampled for a long job), or null. */
async function fetchHistory() {
  try {
    return await api(`${jobUrl}/metrics?max_points=${HISTORY_POINTS}`);
  } catch (err) {
    showActionError(`Could not load the metric history: ${err.message}`);
    return null;
  }
}

function drawHistory(history) {
  for (const r of history?.metrics || []) addStep(r);
  for (const r of history?.evals || []) addEval(r);
}

/** Start over from the store: job, history, then the stream for what follows. */
let resyncing = null;
function resync() {
  resyncing ??= (async () => {
    closeStream();
    let fresh;
    try {
      fresh = await api(jobUrl);
    } catch (err) {
      showActionError(`Could not refresh the job: ${err.message}`);
      return;
    }
    const history = await fetchHistory();
    // Swap in one go, so the chart never shows empty in between.
    lossChart.reset();
    mapChart.reset();
    lastStep = -1;
    lastEvalStep = -1;
    recent = [];
    job = fresh;
    drawHistory(history);
    renderJob();
    if (!TERMINAL.has(job.status)) openStream(); // after_step: whatever happened meanwhile
  })().finally(() => (resyncing = null));
  return resyncing;
}

// A finished job may be resumed elsewhere (another tab, a script): look now and then.
setInterval(async () => {
  if (!job || !TERMINAL.has(job.status) || job.status === "succeeded" || document.hidden) return;
  try {
    const fresh = await api(jobUrl);
    if (!TERMINAL.has(fresh.status)) await resync();
  } catch {
    /* the next tick tries again */
  }
}, 5000);

// ---- buttons ------------------------------------------------------------------------------

async function action(button, path, { method = "POST", confirmText } = {}) {
  if (confirmText && !window.confirm(confirmText)) return null;
  button.disabled = true;
  showActionError("");
  try {
    return (await api(`${jobUrl}${path}`, { method })) ?? {}; // DELETE answers 204, no body
  } catch (err) {
    showActionError(err.message);
    renderJob();
    return null;
  }
}

$("cancel-btn").addEventListener("click", async (e) => {
  const updated = await action(e.currentTarget, "/cancel");
  if (updated) {
    job = updated;
    renderJob();
  }
});

$("resume-btn").addEventListener("click", async (e) => {
  // The server drops the metrics after the checkpoint it resumes from: redraw from the store.
  if (await action(e.currentTarget, "/resume")) await resync();
});

$("export-format").addEventListener("change", () => job && renderExport());

$("delete-btn").addEventListener("click", async (e) => {
  const done = await action(e.currentTarget, "", { method: "DELETE", confirmText: "Delete this job and its files?" });
  if (done) location.assign(`${ROOT}/`);
});

// ---- start --------------------------------------------------------------------------------

async function init() {
  try {
    job = await api(jobUrl);
  } catch (err) {
    $("job-name").textContent = err.status === 404 ? `Job ${jobId} does not exist` : `Could not load job ${jobId}`;
    $("job-status").hidden = true;
    showActionError(err.status === 404 ? "" : err.message);
    return;
  }
  renderJob();
  renderConfig(job.config);
  mountMetaEditor($("meta-form"), $("meta-status"), job, jobUrl, (updated) => {
    Object.assign(job, { name: updated.name, tags: updated.tags, notes: updated.notes });
    renderJob();
  });
  mapChart.setXRange(job.total_steps);
  drawHistory(await fetchHistory());
  loadHealth();
  if (!TERMINAL.has(job.status)) openStream();
  root.dataset.ready = "true";
  // The elapsed time and ETA tick between steps too.
  setInterval(() => job && !TERMINAL.has(job.status) && renderProgress(), 1000);
}

init();
