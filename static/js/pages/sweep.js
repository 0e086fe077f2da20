// sweep.html, one sweep: progress by job status, a row per run with its swept values and best
// mAP, the best run highlighted, the compare link and the cancel button.
//
// Live by polling GET /api/sweeps/{id} every 1.5 s until the sweep is finished or cancelled,
// rather than an SSE stream per job: one request redraws every row, a sweep of 200 jobs needs no
// 200 streams (a browser opens only 6 HTTP/1.1 connections to a host), and a row changes at most
// by a step count and an evaluation, which a 1.5 s poll shows soon enough.
import { ROOT, api } from "../lib/api.js";
import { $, el, showMessage } from "../lib/dom.js";
import { fmtFixed, fmtTime } from "../lib/format.js";
import { progressOf, statusBadge } from "../lib/jobs.js";
import { SWEEP_DONE, countsText, stackedBar, valueText } from "../lib/sweeps.js";

const POLL_MS = 1500;
const sweepId = $("sweep-root").dataset.sweepId;
const actionError = $("action-error");
const cancelBtn = $("cancel-btn");
const compareLink = $("compare-link");

let timer = null;
let last = null;

function bestText(best) {
  if (!best?.best) return "–";
  const { map50, map50_step: step } = best.best;
  return `${fmtFixed(map50)}${step ? ` @ ${step}` : ""}`;
}

function runRow(run, keys, bestId) {
  const isBest = run.job_id === bestId;
  const href = `${ROOT}/jobs/${encodeURIComponent(run.job_id)}`;
  const pct = progressOf(run) * 100;
  const b = run.best || {};
  const name = run.status === "deleted" ? el("span", { class: "muted", text: `deleted #${run.job_id}` }) : el("a", { href, text: run.name || run.job_id });
  return el(
    "tr",
    { class: isBest ? "best" : null, dataset: { jobId: run.job_id, status: run.status }, "aria-current": isBest ? "true" : null },
    el("td", { class: "num muted", text: String(run.index + 1) }),
    el("td", { class: "job-name" }, name, isBest ? el("span", { class: "best-mark", text: "★ best" }) : null),
    el("td", {}, run.error ? Object.assign(statusBadge(run.status), { title: run.error }) : statusBadge(run.status)),
    el(
      "td",
      { class: "col-progress" },
      el("div", { class: "progress", title: `${pct.toFixed(1)} %` }, el("div", { class: `progress-fill status-${run.status}`, style: `width:${pct}%` })),
      el("span", { class: "progress-label", text: `${run.step} / ${run.total_steps}` }),
    ),
    ...keys.map((k) => el("td", { class: "mono value", text: k in run.values ? valueText(run.values[k]) : "–" })),
    el("td", { class: "num strong", title: b.map50_step ? `at step ${b.map50_step}` : "", text: fmtFixed(b.map50) }),
    el("td", { class: "num", title: b.map_step ? `at step ${b.map_step}` : "", text: fmtFixed(b.map) }),
  );
}

function renderHead(keys) {
  const cells = [
    el("th", { class: "num", text: "#" }),
    el("th", { text: "Job" }),
    el("th", { text: "Status" }),
    el("th", { class: "col-progress", text: "Progress" }),
    ...keys.map((k) => el("th", { class: "metric key", title: "swept key", text: k })),
    el("th", { class: "num metric", title: "best validation mAP at IoU 0.5 (hover: its step)", text: "best mAP@.5" }),
    el("th", { class: "num metric", title: "best validation mAP@[.5:.95] (hover: its step)", text: "best mAP" }),
  ];
  $("runs-head").replaceChildren(...cells);
}

function render(sweep) {
  last = sweep;
  document.title = `${sweep.name} · sweep · ssdboard`;
  $("sweep-name").textContent = sweep.name;
  const badge = $("sweep-status");
  badge.className = `badge status-${sweep.status}`;
  badge.textContent = sweep.status;
  const p = sweep.progress;
  $("sweep-summary").textContent = `${p.jobs} jobs over ${sweep.keys.join(", ")} · created ${fmtTime(sweep.created_at)}`;
  stackedBar($("sweep-progress"), p);
  $("progress-jobs").textContent = `${p.done} of ${p.jobs} jobs done`;
  $("progress-counts").textContent = countsText(p);
  $("progress-steps").textContent = `${p.steps} / ${p.total_steps} steps (${(100 * p.fraction).toFixed(p.fraction < 0.1 ? 1 : 0)} %)`;
  const bestId = sweep.best?.job_id;
  $("best-card").hidden = !sweep.best;
  if (sweep.best) {
    const b = sweep.best;
    const values = sweep.keys.map((k) => `${k} = ${valueText(b.values[k])}`).join(", ");
    $("best-text").replaceChildren(
      el("a", { href: `${ROOT}/jobs/${encodeURIComponent(b.job_id)}`, text: b.name || b.job_id }),
      `: mAP@.5 ${bestText(b)}, mAP ${fmtFixed(b.best.map)} with `,
      el("code", { text: values }),
    );
  }
  renderHead(sweep.keys);
  const colspan = 6 + sweep.keys.length;
  $("runs-body").replaceChildren(
    ...(sweep.runs.length ? sweep.runs.map((r) => runRow(r, sweep.keys, bestId)) : [el("tr", { class: "placeholder" }, el("td", { colspan, text: "No jobs." }))]),
  );
  const ids = sweep.compare_url.split("=")[1] || "";
  compareLink.href = ROOT + sweep.compare_url;
  compareLink.toggleAttribute("aria-disabled", ids.split(",").filter(Boolean).length < 2);
  compareLink.title = sweep.best ? "Compare the best runs (up to 10)" : "Compare the first runs (up to 10)";
  const done = SWEEP_DONE.has(sweep.status);
  cancelBtn.disabled = done || sweep.cancel_requested;
  cancelBtn.textContent = sweep.status === "cancelling" ? "Cancelling…" : "Cancel sweep";
  const spec = sweep.spec;
  const seed = Object.keys(spec.random || {}).length ? ` · ${spec.samples} random draws, seed ${spec.seed}` : "";
  $("sweep-spec").textContent = `max_jobs ${spec.max_jobs}${seed} · sweep ${sweep.id}`;
  if (done) stop();
}

async function refresh() {
  try {
    render(await api(`/api/sweeps/${encodeURIComponent(sweepId)}`));
    if (!cancelBtn.dataset.failed) showMessage(actionError, "");
  } catch (err) {
    showMessage(actionError, err.status === 404 ? `No sweep ${sweepId}.` : `Could not load the sweep: ${err.message}`);
    if (err.status === 404) stop();
  }
}

function stop() {
  clearInterval(timer);
  timer = null;
}

function schedule() {
  stop();
  if (!document.hidden && !(last && SWEEP_DONE.has(last.status))) timer = setInterval(refresh, POLL_MS);
}

cancelBtn.addEventListener("click", async () => {
  cancelBtn.disabled = true;
  try {
    render(await api(`/api/sweeps/${encodeURIComponent(sweepId)}/cancel`, { method: "POST" }));
    delete cancelBtn.dataset.failed;
    showMessage(actionError, "");
  } catch (err) {
    cancelBtn.dataset.failed = "true";
    showMessage(actionError, `Could not cancel the sweep: ${err.message}`);
    cancelBtn.disabled = false;
  }
});

compareLink.addEventListener("click", (event) => {
  if (compareLink.hasAttribute("aria-disabled")) event.preventDefault();
});

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && !(last && SWEEP_DONE.has(last.status))) refresh();
  schedule();
});

refresh().then(schedule);
