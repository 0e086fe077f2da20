// What the sweep pages share: a sweep's stacked progress bar, its status badge, swept values as text.
import { el } from "./dom.js";
import { statusBadge } from "./jobs.js";

/** Sweep statuses after which nothing changes by itself. */
export const SWEEP_DONE = new Set(["finished", "cancelled"]);

/** Job statuses in the order the progress bar stacks them. */
const ORDER = ["succeeded", "failed", "interrupted", "cancelled", "running", "queued"];

/** A sweep's status badge (queued, running, cancelling, cancelled, finished). */
export const sweepBadge = statusBadge;

/**
 * One segment per job status, as wide as its share of the sweep's jobs (queued jobs are the empty
 * track; running ones a paler segment); `title` gives the counts.
 */
export function stackedBar(bar, progress) {
  const total = progress.jobs || 1;
  bar.replaceChildren(
    ...ORDER.filter((s) => s !== "queued" && progress.counts[s]).map((s) =>
      el("div", { class: `progress-fill status-${s}`, style: `width:${(100 * progress.counts[s]) / total}%`, title: `${progress.counts[s]} ${s}` }),
    ),
  );
  bar.title = countsText(progress);
  return bar;
}

/** "2 succeeded · 1 running · 3 queued". */
export function countsText(progress) {
  return ORDER.filter((s) => progress.counts[s]).map((s) => `${progress.counts[s]} ${s}`).join(" · ") || "no jobs";
}

/** A swept value in a table cell: numbers to 4 significant digits, lists as JSON. */
export function valueText(value) {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
  if (typeof value === "string") return value;
  return JSON.stringify(value).replace(/,/g, ", ");
}
