// compare.html: 2 to 10 jobs overlaid. The URL holds the state (?jobs=ID1,ID2&x=step&smoothing=0.6
// &log=1&all=1), so a comparison can be shared and reloaded.
//
// One GET /api/compare brings every job's loss parts (decimated on the server to about the
// page's width, each bucket's lowest and highest step kept so spikes show), every evaluation and
// the config table. Each job that is still queued or running then gets its own Server-Sent Events
// stream from the step it was drawn to (?after_step=, as the job page does); its steps and
// evaluations are appended as they come. A status event with a step before the last one drawn
// means the job was resumed from a checkpoint (the server dropped the later steps): everything
// is loaded again.
import { ROOT, api } from "../lib/api.js";
import { $, el, showMessage } from "../lib/dom.js";
import { fmtFixed, fmtLoss } from "../lib/format.js";
import { TERMINAL, statusBadge } from "../lib/jobs.js";
import { renderConfigDiff, renderHparams } from "../lib/config_diff.js";
import { OverlayChart } from "../lib/overlay.js";
import { drawFigure } from "../lib/plots.js";

const PARTS = ["pos_clf", "neg_clf", "loc", "total"];
const MIN_JOBS = 2;
const MAX_JOBS = 10;

const params = new URLSearchParams(location.search);
const ids = [...new Set((params.get("jobs") || "").split(",").map((s) => s.trim()).filter(Boolean))];

let jobs = []; // the API's jobs, with lastStep, lastTotal, evals kept current by the streams
let configRows = [];
const streams = new Map(); // job id -> EventSource

const lossCharts = Object.fromEntries(
  PARTS.map((part) => [part, new OverlayChart($(`chart-${part}`), { smoothable: true, yTitle: part })]),
);
const mapCharts = {
  map50: new OverlayChart($("chart-map50"), { mode: "lines+markers", yTitle: "mAP@.5", yFromZero: true }),
  map: new OverlayChart($("chart-map"), { mode: "lines+markers", yTitle: "mAP@[.5:.95]", yFromZero: true }),
};
const allCharts = [...Object.values(lossCharts), ...Object.values(mapCharts)];
const diffTable = { head: $("diff-head"), body: $("diff-body"), summary: $("diff-summary") };
const showConfig = () => renderConfigDiff(diffTable, configRows, jobs, allKeys.checked);
const showHparams = () => renderHparams($("hparam-charts"), $("hparams-empty"), configRows, jobs);

// ---- controls, mirrored in the URL ----------------------------------------------------------

const xAxis = $("x-axis");
const smoothing = $("smoothing");
const logScale = $("log-scale");
const allKeys = $("all-keys");
xAxis.value = ["step", "images", "wall"].includes(params.get("x")) ? params.get("x") : "step";
if (params.has("smoothing")) smoothing.value = String(Math.min(0.99, Math.max(0, Number(params.get("smoothing")) || 0)));
logScale.checked = params.get("log") === "1";
allKeys.checked = params.get("all") === "1";

function applyControls() {
  const w = Number(smoothing.value);
  $("smoothing-value").textContent = w.toFixed(2);
  for (const chart of allCharts) chart.setXMode(xAxis.value);
  for (const chart of Object.values(lossCharts)) {
    chart.setSmoothing(w);
    chart.setLogScale(logScale.checked);
  }
}

function saveUrl() {
  const next = new URLSearchParams();
  if (ids.length) next.set("jobs", ids.join(","));
  if (xAxis.value !== "step") next.set("x", xAxis.value);
  if (smoothing.value !== smoothing.defaultValue) next.set("smoothing", smoothing.value);
  if (logScale.checked) next.set("log", "1");
  if (allKeys.checked) next.set("all", "1");
  // Commas stay readable in a shared link.
  history.replaceState(null, "", `${location.pathname}?${next.toString().replace(/%2C/g, ",")}`);
}

for (const input of [xAxis, smoothing, logScale]) {
  input.addEventListener(input === smoothing ? "input" : "change", () => {
    applyControls();
    saveUrl();
  });
}
allKeys.addEventListener("change", () => {
  showConfig();
  saveUrl();
});

// ---- drawing --------------------------------------------------------------------------------

function chartJobs() {
  return jobs.map((j) => ({ id: j.id, name: j.name, color: j.color, batch: j.batch_size }));
}

function evalPoints(job, key) {
  const rows = job.evals.filter((e) => typeof e[key] === "number");
  return {
    step: rows.map((e) => e.step),
    wall: rows.map((e) => (job.t0 !== null && typeof e.time === "number" ? e.time - job.t0 : null)),
    value: rows.map((e) => e[key]),
  };
}

function drawEvals() {
  for (const [key, chart] of Object.entries(mapCharts)) {
    for (const job of jobs) chart.setPoints(job.id, evalPoints(job, key));
    $(`${key}-empty`).hidden = jobs.some((j) => j.evals.some((e) => typeof e[key] === "number"));
  }
}

/** The best value of `key` over a job's evaluations ({value, step}, the earliest on a tie), or null. */
function bestOf(job, key) {
  let best = null;
  for (const e of job.evals) if (Number.isFinite(e[key]) && (!best || e[key] > best.value)) best = { value: e[key], step: e.step };
  return best;
}

function renderJobsTable() {
  const fmtBest = (b) => (b ? el("span", {}, fmtFixed(b.value, 3), el("span", { class: "muted", text: ` @ ${b.step}` })) : "–");
  $("jobs-body").replaceChildren(
    ...jobs.map((job) => {
      const show = el("input", { type: "checkbox", checked: true, "aria-label": `Show ${job.name} on the charts` });
      show.checked = !lossCharts.total.hidden.has(job.id);
      show.addEventListener("change", () => allCharts.forEach((c) => c.setHidden(job.id, !show.checked)));
      return el(
        "tr",
        { dataset: { job: job.id } },
        el(
          "td",
          { class: "job-name" },
          el("label", { class: "job-pick" }, show, el("span", { class: "swatch-job", style: `background:${job.color}` })),
          el("a", { href: `${ROOT}/jobs/${encodeURIComponent(job.id)}`, text: job.name || job.id }),
          el("span", { class: "muted id", text: ` ${job.id}` }),
        ),
        el("td", {}, statusBadge(job.status)),
        el("td", { class: "num", text: `${job.lastStep} / ${job.total_steps}` }),
        el("td", { class: "num", text: job.batch_size ?? "–" }),
        el("td", { class: "num" }, fmtBest(job.best.map50)),
        el("td", { class: "num" }, fmtBest(job.best.map)),
        el("td", { class: "num", text: fmtLoss(job.lastTotal) }),
      );
    }),
  );
  const running = jobs.filter((j) => !TERMINAL.has(j.status)).length;
  const differing = configRows.filter((r) => r.differs).length;
  $("compare-summary").textContent =
    `${jobs.length} jobs${running ? ` · ${running} live` : ""} · ${differing} setting${differing === 1 ? "" : "s"} differ`;
}

let tableTimer = null;
/** Re-render the table and the best-mAP plots at most once a second while jobs stream. */
function renderSoon() {
  tableTimer ??= setTimeout(() => {
    tableTimer = null;
    renderJobsTable();
    showHparams();
  }, 1000);
}

function draw(data) {
  jobs = data.jobs.map((job) => ({
    ...job,
    lastStep: job.last_step,
    lastTotal: job.metrics.total.value.at(-1) ?? null,
  }));
  configRows = data.config;
  for (const chart of allCharts) chart.setJobs(chartJobs());
  for (const part of PARTS) for (const job of jobs) lossCharts[part].setPoints(job.id, job.metrics[part]);
  drawEvals();
  applyControls();
  renderJobsTable();
  $("compare-body").hidden = false; // before the charts size themselves
  $("chart-controls").hidden = false;
  showConfig();
  showHparams();
}

// ---- live -----------------------------------------------------------------------------------

function onStep(job, record) {
  if (record.step <= job.lastStep) return; // drawn already (a reconnect replays)
  if (job.t0 === null && typeof record.time === "number") job.t0 = record.time;
  const wall = typeof record.time === "number" ? record.time - job.t0 : null;
  for (const part of PARTS) lossCharts[part].append(job.id, record.step, wall, record[part] ?? null);
  job.lastStep = record.step;
  job.lastTotal = record.total ?? job.lastTotal;
  renderSoon();
}

function onEval(job, record) {
  if (job.evals.some((e) => e.step === record.step)) return;
  job.evals.push(record);
  job.best = { map50: bestOf(job, "map50"), map: bestOf(job, "map") };
  drawEvals();
  renderSoon();
}

const resynced = new Map(); // job id -> id of the status event that last made us load again

function onStatus(job, data, eventId, replayed) {
  // A status with a step before the last one drawn: training restarted at a checkpoint (a
  // resume) and the server dropped the steps after it, so load again. Not for the status a new
  // stream replays first when it is the one loaded (a running job's "running" from step 0), and
  // once per event, so the new stream's replay of the same event does not loop.
  const restarted = typeof data.step === "number" && data.step < job.lastStep;
  if (restarted && !(replayed && data.status === job.status) && eventId > (resynced.get(job.id) ?? 0)) {
    resynced.set(job.id, eventId);
    load();
    return;
  }
  job.status = data.status;
  if (TERMINAL.has(job.status)) closeStream(job.id);
  renderSoon();
}

function openStream(job) {
  if (streams.has(job.id)) return;
  const url = `${ROOT}/api/jobs/${encodeURIComponent(job.id)}/events?after_step=${Math.max(job.lastStep, 0)}`;
  const source = new EventSource(url);
  streams.set(job.id, source);
  source.addEventListener("step", (e) => onStep(job, JSON.parse(e.data)));
  source.addEventListener("eval", (e) => onEval(job, JSON.parse(e.data)));
  let first = true;
  source.addEventListener("status", (e) => {
    onStatus(job, JSON.parse(e.data), Number(e.lastEventId) || 0, first);
    first = false;
  });
  source.addEventListener("open", () => (first = true)); // a reconnect replays a status too
  source.addEventListener("error", () => {
    // CONNECTING: EventSource retries by itself (with Last-Event-ID). CLOSED: it gave up.
    if (source.readyState === EventSource.CLOSED && streams.get(job.id) === source) {
      streams.delete(job.id);
      setTimeout(() => !TERMINAL.has(job.status) && openStream(job), 3000);
    }
  });
}

function closeStream(id) {
  streams.get(id)?.close();
  streams.delete(id);
}

// ---- loading --------------------------------------------------------------------------------

/** Points per loss part and job: about the width of the page in device pixels. */
function pointsWanted() {
  const px = window.innerWidth * (window.devicePixelRatio || 1);
  return Math.round(Math.min(5000, Math.max(300, px)));
}

let loading = null;
function load() {
  loading ??= (async () => {
    for (const id of [...streams.keys()]) closeStream(id);
    try {
      const query = `jobs=${ids.map(encodeURIComponent).join(",")}&points=${pointsWanted()}`;
      draw(await api(`/api/compare?${query}`));
    } catch (err) {
      $("compare-body").hidden = true;
      const why = err.status === 404 ? `${err.message} (deleted, or a mistyped link)` : err.message;
      showMessage($("compare-error"), `Cannot compare these jobs: ${why}. Choose 2 to 10 jobs below.`);
      openPicker();
      return;
    }
    for (const job of jobs) if (!TERMINAL.has(job.status)) openStream(job);
    $("compare-root").dataset.ready = "true";
  })().finally(() => (loading = null));
  return loading;
}

// ---- picking jobs ---------------------------------------------------------------------------

async function openPicker() {
  const picker = $("picker");
  picker.open = true;
  if (picker.dataset.loaded) return;
  picker.dataset.loaded = "true";
  let listed;
  try {
    const answer = await api("/api/jobs?limit=200");
    listed = Array.isArray(answer) ? answer : answer.jobs || answer.items || [];
  } catch (err) {
    $("picker-list").replaceChildren(el("p", { class: "notice error", text: `Could not list the jobs: ${err.message}` }));
    return;
  }
  const chosen = new Set(ids);
  const boxes = listed.map((job) => {
    const box = el("input", { type: "checkbox", value: job.id, checked: chosen.has(job.id) });
    return [box, el("label", { class: "picker-item" }, box, el("span", { text: job.name || job.id }), " ", statusBadge(job.status), el("span", { class: "muted id", text: job.id }))];
  });
  const count = () => boxes.filter(([box]) => box.checked).length;
  const update = () => {
    const n = count();
    $("picker-go").disabled = n < MIN_JOBS || n > MAX_JOBS;
    $("picker-count").textContent = `${n} selected`;
  };
  boxes.forEach(([box]) => box.addEventListener("change", update));
  $("picker-list").replaceChildren(...(boxes.length ? boxes.map(([, label]) => label) : [el("p", { class: "muted", text: "No jobs yet." })]));
  update();
  $("picker-go").addEventListener("click", () => {
    const picked = boxes.filter(([box]) => box.checked).map(([box]) => box.value);
    location.assign(`${ROOT}/compare?jobs=${picked.map(encodeURIComponent).join(",")}`);
  });
}

// ---- why they missed --------------------------------------------------------------------------

const WHY_TYPES = ["cls", "loc", "both", "dupe", "bkg", "missed", "false_pos", "false_neg"];
const WHY_NAMES = { cls: "Cls", loc: "Loc", both: "Both", dupe: "Dupe", bkg: "Bkg", missed: "Missed", false_pos: "all FP", false_neg: "all FN" };

/** Each job's analysis (GET /api/jobs/{id}/analysis, one at a time: the server runs one), then TIDE's dAP side by side. */
async function analyzeAll(event) {
  event.preventDefault();
  const n = Number($("why-n").value) || 200;
  $("why-run").disabled = true;
  const results = [];
  const failed = [];
  for (const [i, job] of jobs.entries()) {
    $("why-status").textContent = `Analyzing ${job.name || job.id} (${i + 1} of ${jobs.length}) on ${n} validation images…`;
    try {
      results.push({ job, doc: await api(`/api/jobs/${encodeURIComponent(job.id)}/analysis?n=${n}`) });
    } catch (err) {
      failed.push(`${job.name || job.id}: ${err.message}`);
    }
  }
  $("why-run").disabled = false;
  const traces = results.map(({ job, doc }) => ({
    type: "bar",
    name: `${job.name || job.id} (AP@.5 ${fmtFixed(doc.ap50, 1)})`,
    x: WHY_TYPES.map((t) => WHY_NAMES[t]),
    y: WHY_TYPES.map((t) => doc.tide[t] ?? 0),
    marker: { color: job.color },
    hovertemplate: `${job.name || job.id}<br>%{x}: +%{y:.2f} AP@.5 if fixed<extra></extra>`,
  }));
  $("why-chart").hidden = !traces.length;
  if (traces.length) {
    const layout = {
      template: "plotly_white", barmode: "group", margin: { l: 55, r: 10, t: 10, b: 40 },
      yaxis: { title: { text: "dAP (AP@.5 points)" }, rangemode: "tozero" }, legend: { orientation: "h", y: 1.12 },
    };
    await drawFigure($("why-chart"), { data: traces, layout });
  }
  $("why-status").textContent = `${results.length} of ${jobs.length} jobs analyzed on their first ${n} validation images.` +
    (failed.length ? ` Not analyzed: ${failed.join("; ")}` : "");
  $("why-card").dataset.ready = "true";
}

$("why-form").addEventListener("submit", analyzeAll);
$("picker").addEventListener("toggle", () => $("picker").open && openPicker());

if (ids.length < MIN_JOBS || ids.length > MAX_JOBS) {
  const got = ids.length ? `${ids.length} job${ids.length === 1 ? "" : "s"} in the link` : "no jobs in the link";
  showMessage($("compare-error"), `Compare needs 2 to 10 jobs (${got}). Choose them below, or select them on the jobs page.`);
  openPicker();
} else {
  load();
}
