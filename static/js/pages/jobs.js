// jobs.html, the jobs list: polls GET /api/jobs every 2 s and redraws the table body.
import { ROOT, api } from "../lib/api.js";
import { $, el } from "../lib/dom.js";
import { fmtLoss, fmtTime } from "../lib/format.js";
import { progressOf, statusBadge } from "../lib/jobs.js";

const POLL_MS = 2000;
const body = $("jobs-body");
const errorBox = $("list-error");
const filter = $("status-filter");

filter.value = new URLSearchParams(location.search).get("status") || "";
filter.addEventListener("change", () => {
  const url = new URL(location.href);
  if (filter.value) url.searchParams.set("status", filter.value);
  else url.searchParams.delete("status");
  history.replaceState(null, "", url);
  refresh();
});

function row(job) {
  const href = `${ROOT}/jobs/${encodeURIComponent(job.id)}`;
  const m = job.last_metrics || {};
  const pct = progressOf(job) * 100;
  const map50 = job.last_eval ? job.last_eval.map50 : null;
  return el(
    "tr",
    { dataset: { jobId: job.id, status: job.status } },
    el("td", { class: "job-name" }, el("a", { href, text: job.name || `job ${job.id}` }), el("span", { class: "muted id", text: ` #${job.id}` })),
    el("td", {}, statusBadge(job.status)),
    el(
      "td",
      { class: "col-progress" },
      el(
        "div",
        { class: "progress", title: `${pct.toFixed(1)} %` },
        el("div", { class: `progress-fill status-${job.status}`, style: `width:${pct}%` }),
      ),
      el("span", { class: "progress-label", text: `${job.step ?? 0} / ${job.total_steps ?? "?"}` }),
    ),
    el("td", { class: "num opt", text: fmtLoss(m.pos_clf) }),
    el("td", { class: "num opt", text: fmtLoss(m.neg_clf) }),
    el("td", { class: "num opt", text: fmtLoss(m.loc) }),
    el("td", { class: "num strong", text: fmtLoss(m.total) }),
    el("td", { class: "num", text: map50 === null || map50 === undefined ? "–" : map50.toFixed(3) }),
    el("td", { class: "time opt", title: job.created_at || "", text: fmtTime(job.created_at) }),
  );
}

function render(jobs) {
  if (!jobs.length) {
    const message = filter.value ? `No ${filter.value} jobs.` : "No jobs yet. ";
    const cell = el("td", { colspan: 9 }, message, filter.value ? null : el("a", { href: `${ROOT}/jobs/new`, text: "Start one." }));
    body.replaceChildren(el("tr", { class: "placeholder" }, cell));
    return;
  }
  body.replaceChildren(...jobs.map(row));
}

let timer = null;
let inFlight = false;

async function refresh() {
  if (inFlight) return;
  inFlight = true;
  try {
    const query = new URLSearchParams({ limit: "200" });
    if (filter.value) query.set("status", filter.value);
    render(await api(`/api/jobs?${query}`));
    errorBox.hidden = true;
  } catch (err) {
    errorBox.textContent = `Could not load the jobs: ${err.message}`;
    errorBox.hidden = false;
  } finally {
    inFlight = false;
  }
}

function schedule() {
  clearInterval(timer);
  timer = document.hidden ? null : setInterval(refresh, POLL_MS);
}

// No polling while the tab is hidden; catch up at once when it shows again.
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refresh();
  schedule();
});

refresh();
schedule();
