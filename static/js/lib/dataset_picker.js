// The new-job form's dataset picker: the form starts from the data.
//
// A <select> of GET /api/datasets (the generator `mnist` first, then every import; one still
// importing or failed is listed but cannot be chosen). Choosing a dataset sets the form's
// `data.dataset` and `model.num_classes` (read-only: the dataset says it), and shows only the
// fields that apply: the generator's digit fields for `mnist`, the `augment` section and
// `data.resize` for imported data.
import { api } from "./api.js";
import { el } from "./dom.js";

export const MNIST = "mnist";
/** Keys that only the generator reads. */
export const GENERATOR_KEYS = ["data.min_digits", "data.max_digits", "data.scale_range", "data.val_images", "data.train_overlap", "data.train_nearest"];
/** Keys (and the section) that only an imported dataset reads. */
export const IMPORTED_KEYS = ["data.resize"];
export const IMPORTED_SECTIONS = ["augment"];

/** "raccoon — 200 images, 217 boxes, 1 class" (the generator: "mnist — generated digits, 10 classes"). */
export function describeDataset(d) {
  const classes = `${d.classes.length} class${d.classes.length === 1 ? "" : "es"}`;
  if (d.builtin) return `${d.name} — generated digits on the fly, ${classes}`;
  const status = d.status === "ready" ? "" : ` (${d.status})`;
  return `${d.name} — ${d.counts.images} images, ${d.counts.boxes} boxes, ${classes}${status}`;
}

/**
 * Mount the picker on `select` over `config` (lib/config_form.js's form, built). `help` shows
 * what the chosen data means for the run. Returns {datasets, choose(idOrName), sync(), applies(field)}.
 */
export async function mountDatasetPicker({ select, help, config, onChange = null }) {
  let datasets = [];
  try {
    datasets = await api("/api/datasets");
  } catch (err) {
    help.textContent = `Could not list the datasets: ${err.message}`;
  }
  select.replaceChildren(
    ...datasets.map((d) => el("option", { value: d.id, text: describeDataset(d), disabled: d.status !== "ready" })),
  );
  const byKey = new Map();
  for (const d of datasets) {
    byKey.set(d.id, d);
    if (!byKey.has(d.name)) byKey.set(d.name, d);
  }
  const field = (key) => config.fields.get(key);

  /** Whether a form field is read by the chosen data (the others are hidden and not sent). */
  function applies(f, d = current()) {
    if (!d) return true;
    if (f.key === "data.dataset") return false; // the picker stands for it
    if (d.builtin) return !IMPORTED_KEYS.includes(f.key) && !IMPORTED_SECTIONS.includes(f.path[0]);
    return !GENERATOR_KEYS.includes(f.key);
  }

  function current() {
    return byKey.get(select.value) || null;
  }

  function render() {
    const d = current();
    for (const f of config.fields.values()) {
      const hidden = !applies(f, d);
      f.wrapper.hidden = hidden;
      f.wrapper.dataset.inapplicable = String(hidden);
    }
    for (const section of IMPORTED_SECTIONS) {
      const box = document.querySelector(`fieldset[data-section="${section}"]`);
      if (box) box.hidden = Boolean(d && d.builtin);
    }
    const classes = field("model.num_classes");
    if (classes) {
      classes.input.readOnly = Boolean(d);
      classes.input.title = d ? `${d.name} has ${d.classes.length} classes` : "";
    }
    if (!d) return;
    help.textContent = d.builtin
      ? "Digits drawn on the fly (ssd.data); how many, how large and how they overlap are under Advanced settings (data)."
      : `${d.splits.train} training and ${d.splits.val} validation images; classes: ${d.classes.slice(0, 8).join(", ")}` +
        `${d.classes.length > 8 ? ", …" : ""}. Left at the preset, the input size, the priors and, for a small dataset, ` +
        "the steps are fitted to the data when the job starts; the job page says why.";
  }

  /** Choose a dataset by id or name; the form's data.dataset and model.num_classes follow. */
  function choose(idOrName) {
    const d = byKey.get(idOrName);
    if (!d || d.status !== "ready") return false;
    select.value = d.id;
    const dataset = field("data.dataset");
    if (dataset) dataset.input.value = d.builtin ? MNIST : d.id;
    const classes = field("model.num_classes");
    if (classes) classes.input.value = String(d.classes.length);
    render();
    return true;
  }

  /** The picker from the form's data.dataset (after the form was filled from a job). */
  function sync() {
    const dataset = field("data.dataset");
    if (!dataset || !choose(dataset.input.value)) choose(MNIST);
  }

  select.addEventListener("change", () => {
    choose(select.value);
    if (onChange) onChange(current());
  });
  return { datasets, choose, sync, applies, current };
}
