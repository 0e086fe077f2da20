// What the pages know about a job record: its terminal statuses, its progress, its badge.
import { el } from "./dom.js";

/** Statuses a job never leaves by itself (the server's TERMINAL set). */
export const TERMINAL = new Set(["succeeded", "failed", "cancelled", "interrupted"]);

/** The fraction of a job done, 0..1. */
export function progressOf(job) {
  if (!job.total_steps) return 0;
  return Math.min(1, Math.max(0, (job.step || 0) / job.total_steps));
}

/** A status badge element. */
export function statusBadge(status) {
  return el("span", { class: `badge status-${status}`, text: status });
}
