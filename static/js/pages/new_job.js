// new_job.html, the new-job form: built from GET /api/config/schema, submitted as JSON to POST /api/jobs.
//
// Every field of the config document gets an input showing the chosen preset's value
// (lib/config_form.js). Only the fields whose value differs from the preset are sent (plus the
// preset), so the defaults stay on the server. A 422's messages appear next to the fields their
// `loc` names.
import { ROOT, api } from "../lib/api.js";
import { createConfigForm, fieldLink, focusField, isSubmitting, isValidationError, postForm } from "../lib/config_form.js";
import { mountDatasetPicker } from "../lib/dataset_picker.js";
import { mountPlanPanel } from "../lib/plan_panel.js";
import { $, el } from "../lib/dom.js";
import { BASIC_KEYS, arrangeFields, fillFromJob } from "../lib/job_prefill.js";

const form = $("job-form");
const container = $("form-fields");
const presetSelect = $("preset");
const summary = $("form-summary");
const changedCount = $("changed-count");

const config = createConfigForm({ container, onInput: () => updateChanged() });
let picker = null; // lib/dataset_picker.js, once the form is built
let planPanel = null; // lib/plan_panel.js: "Before you start"
/** Say under each field the recipe will set what it chose (the field shows the preset's value). */
function markFitted(choices) {
  for (const field of config.fields.values()) field.help.querySelector(".fitted")?.remove();
  const mark = (key, value) => {
    const field = config.fields.get(key);
    if (field) field.help.append(el("span", { class: "fitted", text: ` Fitted to the data: ${value}.` }));
  };
  for (const choice of choices) {
    if (choice.key === "priors") {
      mark("priors.scales", JSON.stringify(choice.value.scales));
      mark("priors.ratios", choice.value.ratios.join(", "));
    } else {
      mark(choice.key, choice.value);
    }
  }
}


/** A field the chosen data does not read: hidden, and not sent. */
const inapplicable = (field) => field.wrapper.dataset.inapplicable === "true" && field.key !== "data.dataset";

function updateChanged() {
  let n = 0;
  for (const field of config.fields.values()) {
    const changed = config.isChanged(field, presetSelect.value);
    field.wrapper.classList.toggle("changed", changed);
    n += changed ? 1 : 0;
  }
  changedCount.textContent = n ? `${n} field${n > 1 ? "s" : ""} changed from the ${presetSelect.value} preset` : `All fields at the ${presetSelect.value} preset`;
  let advanced = 0;
  for (const field of config.fields.values()) {
    if (!BASIC_KEYS.includes(field.key) && field.wrapper.classList.contains("changed") && !inapplicable(field)) advanced += 1;
  }
  $("advanced-count").textContent = advanced ? `(${advanced} changed)` : "";
  if (planPanel) planPanel.update();
}

function clearErrors() {
  config.clearErrors();
  presetSelect.removeAttribute("aria-invalid");
  summary.hidden = true;
  summary.replaceChildren();
}

/** The form field a pydantic `loc` names ("preset" for the preset). */
function fieldForLoc(loc) {
  const parts = (loc || []).slice(loc && loc[0] === "body" ? 1 : 0).map(String);
  return parts[0] === "preset" ? "preset" : config.fieldForPath(parts);
}

function showSummary(title, items) {
  summary.replaceChildren(el("strong", { text: title }), items.length ? el("ul", {}, ...items) : null);
  summary.hidden = false;
}

function summaryItem(field, label, msg) {
  if (!field || field === "preset") return el("li", {}, label ? el("code", { text: label }) : null, label ? ": " : "", msg);
  return el("li", {}, fieldLink(field), ": ", msg);
}

function showServerErrors(detail) {
  const items = [];
  let first = null;
  for (const d of detail) {
    const field = fieldForLoc(d.loc);
    const locText = (d.loc || []).filter((p) => p !== "body").join(".");
    if (field === "preset") presetSelect.setAttribute("aria-invalid", "true");
    else if (field) config.showError(field, d.msg);
    first ??= field && field !== "preset" ? field : null;
    items.push(summaryItem(field, field && field !== "preset" ? field.key : locText, d.msg));
  }
  showSummary(`The server refused the config (${detail.length} problem${detail.length > 1 ? "s" : ""}):`, items);
  focusField(first, summary);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (isSubmitting(form)) return;
  clearErrors();
  const { body, errors } = config.changedConfig(presetSelect.value, { skip: inapplicable, markErrors: true });
  if (errors.length) {
    showSummary("Fix these fields first:", errors.map(({ field, msg }) => summaryItem(field, field.key, msg)));
    focusField(errors[0].field, summary);
    return;
  }
  postForm(form, "/api/jobs", body, (job) => `${ROOT}/jobs/${encodeURIComponent(job.id)}`, (err) => {
    if (isValidationError(err)) showServerErrors(err.body.detail);
    else showSummary(`Could not start the job: ${err.message}`, []);
  });
});

let shownPreset = presetSelect.value;
presetSelect.addEventListener("change", () => {
  clearErrors();
  const presets = config.presets();
  const chosen = picker ? picker.current() : null;
  config.fillFrom(presets[presetSelect.value], presets[shownPreset]);
  shownPreset = presetSelect.value;
  if (picker && chosen) picker.choose(chosen.id); // the preset does not change the data
  updateChanged();
});

$("reset-form").addEventListener("click", () => {
  clearErrors();
  const chosen = picker ? picker.current() : null;
  config.fillFrom(config.presets()[presetSelect.value]);
  if (picker && chosen) picker.choose(chosen.id);
  updateChanged();
});

async function init() {
  let data;
  try {
    data = await api("/api/config/schema");
  } catch (err) {
    container.replaceChildren(el("p", { class: "notice error", text: `Could not load the config schema: ${err.message}` }));
    return;
  }
  const presets = { default: data.defaults, notebook: data.notebook };
  const params = new URLSearchParams(location.search);
  const wanted = params.get("preset");
  if (wanted && presets[wanted]) presetSelect.value = wanted;
  shownPreset = presetSelect.value;
  config.build(presets, data.json_schema, presetSelect.value);
  arrangeFields(config, $("basic-fields"), BASIC_KEYS);
  picker = await mountDatasetPicker({ select: $("dataset-picker"), help: $("dataset-help"), config, onChange: () => updateChanged() });
  if (params.get("from")) await fillFromJob(config, $("from-job"), params.get("from"), { fineTune: params.get("fine_tune") === "1" });
  if (params.get("dataset") && !params.get("from")) {
    if (!picker.choose(params.get("dataset"))) picker.sync();
  } else {
    picker.sync(); // the form's data.dataset: the preset's, or the job's
  }
  planPanel = mountPlanPanel(
    $("plan-panel"),
    () => {
      const { body, errors } = config.changedConfig(presetSelect.value, { skip: inapplicable });
      return errors.length ? null : body;
    },
    (plan) => markFitted(plan.choices),
  );
  updateChanged();
  form.dataset.ready = "true";
}



init();
