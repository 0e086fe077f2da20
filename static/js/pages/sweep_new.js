// sweep_new.html, the new-sweep form: the new-job form's fields (lib/config_form.js), each with a
// "sweep" control: fixed (part of the base config), grid (a list of values) or random (a list to
// draw from, or a min/max range for a number). Posted to POST /api/sweeps; a 422 shows next to
// the field whose key it names (grid/random entries, the base's fields, or the sweep's own).
import { ROOT, api } from "../lib/api.js";
import { createConfigForm, fieldLink, focusField, isSubmitting, isValidationError, parseValue, postForm, revealField } from "../lib/config_form.js";
import { mountDatasetPicker } from "../lib/dataset_picker.js";
import { $, el } from "../lib/dom.js";
import { BASIC_KEYS, arrangeFields, fillFromJob } from "../lib/job_prefill.js";

const form = $("sweep-form");
const container = $("form-fields");
const presetSelect = $("preset");
const summary = $("form-summary");
const preview = $("sweep-preview");
const changedCount = $("changed-count");
const top = {
  name: { input: $("sweep-name"), error: $("sweep-name-error") },
  max_jobs: { input: $("max-jobs"), error: $("max-jobs-error") },
  samples: { input: $("samples"), error: $("samples-error") },
  seed: { input: $("sweep-seed"), error: $("sweep-seed-error") },
};

const config = createConfigForm({ container, decorate: addSweepControl, onInput: () => update() });
let picker = null; // lib/dataset_picker.js, once the form is built
/** A field the chosen data does not read: hidden, and neither sent nor swept. */
const inapplicable = (field) => field.wrapper.dataset.inapplicable === "true" && field.key !== "data.dataset";

// ---- the per-field sweep control ----------------------------------------------------------

function valuesHint(field) {
  if (field.kind === "list") return "values separated by ;  e.g. [0.5, 1]; [0.35, 0.6, 1]";
  if (field.kind === "enum") return `e.g. ${field.options.join(", ")}`;
  if (field.kind === "bool") return "true, false";
  if (field.kind === "number") return field.integer ? "e.g. 2, 4, 8" : "e.g. 0.001, 0.003";
  return "values separated by commas";
}

function addSweepControl(field) {
  const id = `${field.id}-sweep`;
  const mode = el(
    "select",
    { id, class: "sweep-mode", name: `sweep:${field.key}`, "aria-label": `Sweep ${field.key}` },
    el("option", { value: "fixed", text: "fixed" }),
    el("option", { value: "grid", text: "grid" }),
    el("option", { value: "random", text: "random" }),
  );
  const values = el("input", { type: "text", class: "mono sweep-values", name: `values:${field.key}`, placeholder: valuesHint(field), spellcheck: "false", autocomplete: "off", "aria-label": `${field.key} values` });
  const min = el("input", { type: "number", step: "any", class: "sweep-min", name: `min:${field.key}`, placeholder: "min", "aria-label": `${field.key} minimum` });
  const max = el("input", { type: "number", step: "any", class: "sweep-max", name: `max:${field.key}`, placeholder: "max", "aria-label": `${field.key} maximum` });
  const log = el("input", { type: "checkbox", class: "sweep-log", name: `log:${field.key}` });
  const range = el("span", { class: "sweep-range" }, min, "–", max, el("label", { class: "toggle" }, log, "log"));
  const error = el("span", { class: "field-error", role: "alert", dataset: { sweepErrorFor: field.key } });
  error.hidden = true;
  const box = el("div", { class: "sweep-control" }, el("label", { for: id, class: "sweep-label", text: "sweep" }), mode, values, range);
  field.sweep = { mode, values, min, max, log, range, error, box };
  if (field.key === "name") field.help.prepend("The sweep names its jobs “sweep name #i” unless you sweep this key. ");
  field.wrapper.append(box, error);
  const changed = () => {
    clearSweepError(field);
    show(field);
    update();
  };
  mode.addEventListener("change", changed);
  for (const input of [values, min, max]) input.addEventListener("input", changed);
  log.addEventListener("change", changed);
  show(field);
}

/** A range for random numbers, a values list otherwise; the fixed input is off while swept. */
function show(field) {
  const { mode, values, range } = field.sweep;
  const swept = mode.value !== "fixed";
  const isRange = mode.value === "random" && field.kind === "number";
  values.hidden = !swept || isRange;
  range.hidden = !isRange;
  field.input.disabled = swept || field.key === "name"; // the sweep names its jobs "NAME #i"
  field.wrapper.classList.toggle("swept", swept);
}

/** The values typed for a grid or a random list; throws Error naming what does not parse. */
function parseValues(field, text) {
  const t = text.trim();
  if (!t) throw new Error("give at least one value");
  const parts = field.kind === "list" ? t.split(";") : t.startsWith("[") ? null : t.split(",");
  if (parts === null) {
    const list = JSON.parse(t);
    if (!Array.isArray(list)) throw new Error("write values separated by commas");
    return list;
  }
  return parts.filter((p) => p.trim() !== "").map((p) => parseValue(field, p));
}

/** {grid, random, errors} of the swept fields. */
function sweptKeys() {
  const grid = {};
  const random = {};
  const errors = [];
  for (const field of config.fields.values()) {
    if (inapplicable(field)) continue;
    const { mode, values, min, max, log } = field.sweep;
    try {
      if (mode.value === "grid") grid[field.key] = parseValues(field, values.value);
      else if (mode.value === "random" && field.kind === "number") {
        if (min.value.trim() === "" || max.value.trim() === "") throw new Error("give min and max");
        random[field.key] = { min: Number(min.value), max: Number(max.value), log: log.checked };
      } else if (mode.value === "random") random[field.key] = parseValues(field, values.value);
    } catch (err) {
      errors.push({ field, msg: err.message });
    }
  }
  return { grid, random, errors };
}

const intOf = (input) => (input.value.trim() === "" ? null : Number(input.value));

// ---- preview and body ---------------------------------------------------------------------

function update() {
  let changed = 0;
  for (const field of config.fields.values()) {
    const on = field.sweep.mode.value === "fixed" && config.isChanged(field, presetSelect.value);
    field.wrapper.classList.toggle("changed", on);
    changed += on ? 1 : 0;
  }
  changedCount.textContent = `${changed} base field${changed === 1 ? "" : "s"} changed from the ${presetSelect.value} preset`;
  const { grid, random, errors } = sweptKeys();
  const sizes = Object.values(grid).map((v) => v.length);
  const gridSize = sizes.reduce((a, b) => a * b, 1);
  const maxJobs = intOf(top.max_jobs.input) || 20;
  const randomKeys = Object.keys(random).length;
  const samples = randomKeys ? intOf(top.samples.input) || Math.floor(maxJobs / gridSize) : 0;
  const total = gridSize * (samples || 1);
  const parts = [];
  if (sizes.length) parts.push(`grid ${sizes.join(" × ")}`);
  if (randomKeys) parts.push(`${samples} random draw${samples === 1 ? "" : "s"} of ${randomKeys} key${randomKeys === 1 ? "" : "s"}`);
  const swept = sizes.length + randomKeys + errors.length;
  const over = total > maxJobs || (randomKeys > 0 && samples < 1);
  preview.classList.toggle("over", over);
  if (!swept) preview.textContent = "Choose keys to sweep: set a field's “sweep” to grid or random.";
  else if (errors.length) preview.textContent = `${errors.length} swept field${errors.length > 1 ? "s" : ""} to fix before counting`;
  else {
    preview.replaceChildren(el("strong", { text: `${total} job${total === 1 ? "" : "s"}` }), `: ${parts.join(" × ")}`, over ? ` — more than max_jobs ${maxJobs}` : "");
  }
  preview.dataset.jobs = errors.length ? "" : String(total);
}

// ---- errors -------------------------------------------------------------------------------

function clearSweepError(field) {
  field.sweep.error.hidden = true;
  field.sweep.error.replaceChildren();
  field.wrapper.classList.remove("invalid");
}

function showSweepError(field, msg) {
  revealField(field);
  field.sweep.error.append(el("span", { text: msg }));
  field.sweep.error.hidden = false;
  field.wrapper.classList.add("invalid");
}

function clearErrors() {
  config.clearErrors();
  for (const field of config.fields.values()) clearSweepError(field);
  for (const { input, error } of Object.values(top)) {
    error.hidden = true;
    error.replaceChildren();
    input.removeAttribute("aria-invalid");
  }
  summary.hidden = true;
  summary.replaceChildren();
}

function showSummary(title, items) {
  summary.replaceChildren(el("strong", { text: title }), items.length ? el("ul", {}, ...items) : null);
  summary.hidden = false;
}

/** Show one 422 entry where its loc points; returns the summary item and the field it marked. */
function placeError({ loc = [], msg }) {
  const parts = loc.slice(loc[0] === "body" ? 1 : 0).map(String);
  const [head, key] = parts;
  if ((head === "grid" || head === "random") && key && config.fields.has(key)) {
    const field = config.fields.get(key);
    showSweepError(field, msg);
    return { field, item: el("li", {}, fieldLink(field, `${head} ${key}`), ": ", msg) };
  }
  if (head === "base") {
    const field = config.fieldForPath(parts.slice(1));
    if (field) {
      config.showError(field, msg);
      return { field, item: el("li", {}, fieldLink(field), ": ", msg) };
    }
  }
  if (top[head]) {
    top[head].error.replaceChildren(el("span", { text: msg }));
    top[head].error.hidden = false;
    top[head].input.setAttribute("aria-invalid", "true");
  }
  return { field: null, item: el("li", {}, el("code", { text: parts.join(".") || "request" }), ": ", msg) };
}

// ---- wiring -------------------------------------------------------------------------------

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (isSubmitting(form)) return;
  clearErrors();
  const { grid, random, errors: sweepErrors } = sweptKeys();
  for (const { field, msg } of sweepErrors) showSweepError(field, msg);
  const swept = (field) => field.sweep.mode.value !== "fixed" || inapplicable(field);
  const { body: base, errors } = config.changedConfig(presetSelect.value, { skip: swept, markErrors: true });
  const all = [...sweepErrors, ...errors];
  if (all.length) {
    showSummary("Fix these fields first:", all.map(({ field, msg }) => el("li", {}, fieldLink(field), ": ", msg)));
    focusField(all[0].field, summary);
    return;
  }
  const body = { name: top.name.input.value, base, grid, random, seed: intOf(top.seed.input) ?? 0, max_jobs: intOf(top.max_jobs.input) ?? 20 };
  if (intOf(top.samples.input) !== null && Object.keys(random).length) body.samples = intOf(top.samples.input);
  postForm(form, "/api/sweeps", body, (sweep) => `${ROOT}/sweeps/${encodeURIComponent(sweep.id)}`, (err) => {
    if (isValidationError(err)) {
      const placed = err.body.detail.map(placeError);
      const n = placed.length;
      showSummary(`The server refused the sweep (${n} problem${n > 1 ? "s" : ""}); no job was queued:`, placed.map((p) => p.item));
      focusField(placed.find((p) => p.field)?.field, summary);
    } else showSummary(`Could not start the sweep: ${err.message}`, []);
  });
});

let shownPreset = presetSelect.value;
presetSelect.addEventListener("change", () => {
  const presets = config.presets();
  const chosen = picker ? picker.current() : null;
  config.fillFrom(presets[presetSelect.value], presets[shownPreset]);
  shownPreset = presetSelect.value;
  if (picker && chosen) picker.choose(chosen.id); // the preset does not change the data
  update();
});
for (const { input } of Object.values(top)) input.addEventListener("input", update);

async function init() {
  let data;
  try {
    data = await api("/api/config/schema");
  } catch (err) {
    container.replaceChildren(el("p", { class: "notice error", text: `Could not load the config schema: ${err.message}` }));
    return;
  }
  config.build({ default: data.defaults, notebook: data.notebook }, data.json_schema, presetSelect.value);
  arrangeFields(config, $("basic-fields"), BASIC_KEYS);
  picker = await mountDatasetPicker({ select: $("dataset-picker"), help: $("dataset-help"), config, onChange: () => update() });
  const params = new URLSearchParams(location.search);
  if (params.get("from")) {
    const job = await fillFromJob(config, $("from-job"), params.get("from"), { what: "Sweeping around the config of" });
    if (job) top.name.input.value = `${job.name || job.id} sweep`;
  }
  if (params.get("dataset") && !params.get("from")) {
    if (!picker.choose(params.get("dataset"))) picker.sync();
  } else {
    picker.sync();
  }
  update();
  form.dataset.ready = "true";
}

init();
