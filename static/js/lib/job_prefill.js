// A form filled from a job (?from=<id>): Train again, Fine-tune from this run, Sweep from this job.
import { ROOT, api } from "./api.js";
import { el } from "./dom.js";

/**
 * Put job `id`'s config in `config` (lib/config_form.js's form) and say so in `note`; with
 * `fineTune` its weights start the run too (model.init = job:<id>: its best weights, the heads
 * where their shapes match). Returns the job, or null when it could not be read.
 */
export async function fillFromJob(config, note, id, { fineTune = false, what = "The config of" } = {}) {
  let job;
  try {
    job = await api(`/api/jobs/${encodeURIComponent(id)}`);
  } catch (err) {
    note.textContent = `Could not load job ${id}: ${err.message}`;
    note.className = "notice error";
    note.hidden = false;
    return null;
  }
  const values = structuredClone(job.config || {});
  values.name = `${job.name || job.id} ${fineTune ? "fine-tuned" : "again"}`;
  if (fineTune) values.model = { ...(values.model || {}), init: `job:${job.id}`, weights: "none" };
  config.setValues(values);
  const link = el("a", { href: `${ROOT}/jobs/${encodeURIComponent(job.id)}`, text: job.name || job.id });
  note.replaceChildren(
    fineTune ? "Fine-tuning from " : `${what} `,
    link,
    fineTune
      ? `: model.init is job:${job.id} (its best weights; heads whose shapes differ start fresh). Change the data or steps below.`
      : ". Change what you want to try below.",
  );
  note.hidden = false;
  return job;
}

/** Move the fields of `keys` out of their sections into `grid` (the run's basic choices). */
export function arrangeFields(config, grid, keys) {
  for (const key of keys) {
    const field = config.fields.get(key);
    if (field) grid.append(field.wrapper);
  }
}

/** The choices most runs make, up front; every other field is under Advanced settings. */
export const BASIC_KEYS = ["name", "model.backbone", "model.init", "data.image_size", "train.steps", "train.time_budget", "train.batch_size", "train.learning_rate"];
