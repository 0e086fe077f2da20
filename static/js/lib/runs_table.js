// The runs table's rows (jobs.html): one <tr> per job, built from GET /api/jobs items.
import { ROOT } from "./api.js";
import { el } from "./dom.js";
import { fmtDuration, fmtLoss, fmtTime } from "./format.js";
import { progressOf, statusBadge } from "./jobs.js";

export const COLUMNS = 15;

function best(value, step, last) {
  if (value === null || value === undefined) return el("td", { class: "num", text: "–" });
  const title = `best ${value.toFixed(4)} at step ${step}` + (last !== undefined && last !== null ? `; latest ${last.toFixed(4)}` : "");
  return el("td", { class: "num best", title }, el("span", { class: "strong", text: value.toFixed(3) }), el("span", { class: "at", text: ` @${step}` }));
}

/**
 * A job's row. `selected` tells whether its checkbox is ticked, `full` whether no more runs can
 * be ticked; `onSelect(id, checked)` and `onFilter(key, value)` (a tag or dataset clicked) are
 * the page's.
 */
export function runRow(job, { selected, full, onSelect, onFilter }) {
  const href = `${ROOT}/jobs/${encodeURIComponent(job.id)}`;
  const m = job.last_metrics || {};
  const pct = progressOf(job) * 100;
  const dataset = (job.config && job.config.data && job.config.data.dataset) || "–";
  const name = job.name || `job ${job.id}`;
  const bestValues = job.best || {};
  const lastEval = job.last_eval || {};
  const box = el("input", {
    type: "checkbox",
    class: "select-run",
    "aria-label": `Select ${name} to compare`,
    checked: selected,
    disabled: full && !selected,
    title: full && !selected ? "At most 10 runs can be compared" : null,
    onchange: (event) => onSelect(job.id, event.target.checked),
  });
  const tags = job.tags && job.tags.length
    ? job.tags.map((tag) => el("button", { type: "button", class: "tag", title: `Show only runs tagged ${tag}`, text: tag, onclick: () => onFilter("tag", tag) }))
    : null;
  const nameCell = el(
    "td",
    { class: "job-name" },
    el("a", { href, text: name, title: `job ${job.id}` }),
    job.notes ? el("span", { class: "has-notes", title: job.notes }, " ✎", el("span", { class: "visually-hidden", text: "(has notes)" })) : null,
    job.sweep_id
      ? el("button", { type: "button", class: "sweep-chip", title: "Show only this sweep's runs", text: `sweep ${job.sweep_id}`, onclick: () => onFilter("sweep", job.sweep_id) })
      : null,
  );
  return el(
    "tr",
    { dataset: { jobId: job.id, status: job.status }, class: selected ? "selected" : null },
    el("td", { class: "col-select" }, box),
    nameCell,
    el("td", { class: "tags" }, tags),
    el("td", {}, statusBadge(job.status)),
    el(
      "td",
      { class: "opt" },
      dataset === "–" ? "–" : el("button", { type: "button", class: "link-like", title: `Show only runs on ${dataset}`, text: dataset, onclick: () => onFilter("dataset", dataset) }),
    ),
    el(
      "td",
      { class: "col-progress" },
      el("div", { class: "progress", title: `${pct.toFixed(1)} %` }, el("div", { class: `progress-fill status-${job.status}`, style: `width:${pct}%` })),
      el("span", { class: "progress-label", text: `${job.step ?? 0} / ${job.total_steps ?? "?"}` }),
    ),
    el("td", { class: "num", text: job.duration_s ? fmtDuration(job.duration_s) : "–" }),
    el("td", { class: "num opt", text: fmtLoss(m.pos_clf) }),
    el("td", { class: "num opt", text: fmtLoss(m.neg_clf) }),
    el("td", { class: "num opt", text: fmtLoss(m.loc) }),
    el("td", { class: "num strong", text: fmtLoss(m.total) }),
    best(bestValues.map50, bestValues.map50_step, lastEval.map50),
    Object.assign(best(bestValues.map, bestValues.map_step, lastEval.map), { className: "num best opt" }),
    el("td", { class: "num opt", text: Number.isFinite(m.images_per_sec) ? m.images_per_sec.toFixed(0) : "–" }),
    el("td", { class: "time opt", title: job.created_at || "", text: fmtTime(job.created_at) }),
  );
}

/** A row spanning the table, with a message (and optional action). */
export function messageRow(...content) {
  return el("tr", { class: "placeholder" }, el("td", { colspan: COLUMNS }, ...content));
}
