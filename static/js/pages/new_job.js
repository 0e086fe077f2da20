// new_job.html, the new-job form: built from GET /api/config/schema, submitted as JSON to POST /api/jobs.
//
// Every field of the config document gets an input showing the chosen preset's value. Only the
// fields whose value differs from the preset are sent (plus the preset), so the defaults stay
// on the server. A 422's messages appear next to the fields their `loc` names.
import { ROOT, ApiError, api } from "../lib/api.js";
import { $, el } from "../lib/dom.js";

const form = $("job-form");
const container = $("form-fields");
const presetSelect = $("preset");
const summary = $("form-summary");
const changedCount = $("changed-count");

/** key ("train.batch_size") -> {key, path, kind, nullable, options, input, error, wrapper, defaultText} */
const fields = new Map();
let presets = {}; // preset name -> full config dict
let schema = {};

// ---- schema helpers -----------------------------------------------------------------------

/** Follow $ref / allOf / anyOf wrappers to the sub-schema that carries type, enum or properties. */
function resolve(node) {
  let current = node || {};
  for (let i = 0; i < 10; i++) {
    if (current.$ref) {
      const target = current.$ref.replace(/^#\//, "").split("/").reduce((obj, part) => (obj ? obj[part] : undefined), schema);
      current = { ...(target || {}), ...withoutKeys(current, ["$ref"]) };
    } else if (current.allOf && current.allOf.length === 1) {
      current = { ...current.allOf[0], ...withoutKeys(current, ["allOf"]) };
    } else {
      return current;
    }
  }
  return current;
}

function withoutKeys(obj, keys) {
  return Object.fromEntries(Object.entries(obj).filter(([k]) => !keys.includes(k)));
}

/** The schema of the property at a dotted path ("train.batch_size"), resolved. */
function propertySchema(path) {
  let node = resolve(schema);
  for (const part of path) {
    const props = node.properties || {};
    node = resolve(props[part]);
  }
  return node;
}

/** Enum values allowed by a schema (Literal fields), or null. */
function enumOf(node) {
  if (node.enum) return node.enum;
  if (node.const !== undefined) return [node.const];
  for (const alt of node.anyOf || node.oneOf || []) {
    const values = enumOf(resolve(alt));
    if (values) return values;
  }
  return null;
}

function allowsNull(node) {
  return (node.anyOf || node.oneOf || []).some((alt) => resolve(alt).type === "null") || node.type === "null";
}

function isInteger(node) {
  if (node.type === "integer") return true;
  return (node.anyOf || []).some((alt) => resolve(alt).type === "integer");
}

/** A docstring-style description as plain text: ``x`` and :func:`x` become x. */
function plain(text) {
  return (text || "").replace(/:\w+:`~?([^`]+)`/g, "$1").replace(/``([^`]+)``/g, "$1").replace(/`([^`]+)`/g, "$1");
}

// ---- values: display and parsing ----------------------------------------------------------

function getPath(obj, path) {
  return path.reduce((o, part) => (o === null || o === undefined ? undefined : o[part]), obj);
}

/** Text shown in a list input: "4, 8, 16" for flat lists, JSON for nested ones, "" for null. */
function listText(value) {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value) && value.every((v) => !Array.isArray(v) && typeof v !== "object")) return value.join(", ");
  return JSON.stringify(value).replace(/,/g, ", ");
}

/** A list typed as JSON ("[[8], [16]]") or comma-separated ("4, 8" or "norm3_2, norm4_2"). */
function parseList(text, nullable) {
  const t = text.trim();
  if (!t || t === "null") {
    if (nullable) return null;
    if (!t) return [];
  }
  if (t.startsWith("[")) {
    try {
      return JSON.parse(t);
    } catch {
      throw new Error("not valid JSON; write e.g. [1, 2] or 1, 2");
    }
  }
  return t.split(",").map((part) => {
    const p = part.trim().replace(/^["']|["']$/g, "");
    return p !== "" && !Number.isNaN(Number(p)) ? Number(p) : p;
  });
}

/** The value of one field as it would be sent; throws Error with a message for bad input. */
function readField(field) {
  const { input, kind } = field;
  switch (kind) {
    case "bool":
      return input.checked;
    case "enum":
      return JSON.parse(input.value);
    case "number": {
      const t = input.value.trim();
      if (t === "") throw new Error("a number is required");
      const n = Number(t);
      if (Number.isNaN(n)) throw new Error(`not a number: ${t}`);
      return n;
    }
    case "list":
      if (field.words.includes(input.value.trim())) return input.value.trim();
      return parseList(input.value, field.nullable);
    default:
      return input.value;
  }
}

function writeField(field, value) {
  const { input, kind } = field;
  if (kind === "bool") input.checked = Boolean(value);
  else if (kind === "enum") input.value = JSON.stringify(value);
  else if (kind === "list") input.value = typeof value === "string" ? value : listText(value);
  else input.value = value === null || value === undefined ? "" : String(value);
}

function sameValue(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// ---- building the form --------------------------------------------------------------------

function fieldKind(path, node) {
  const values = Object.values(presets).map((p) => getPath(p, path));
  // A list that also takes a word ("auto" for priors.scales) is a list field that accepts the word.
  if (values.some(Array.isArray) || node.type === "array" || (node.anyOf || []).some((a) => resolve(a).type === "array")) return "list";
  if (enumOf(node)) return "enum";
  if (values.some((v) => typeof v === "boolean")) return "bool";
  if (values.some((v) => typeof v === "number")) return "number";
  return "text";
}

function buildField(path, sectionEl) {
  const key = path.join(".");
  const node = propertySchema(path);
  const kind = fieldKind(path, node);
  const id = `f-${key.replace(/\./g, "-")}`;
  const label = node.title && node.title.toLowerCase() !== path.at(-1).replace(/_/g, " ") ? node.title : path.at(-1);
  let input;
  if (kind === "enum") {
    input = el("select", { id, name: key }, ...enumOf(node).map((v) => el("option", { value: JSON.stringify(v), text: String(v) })));
  } else if (kind === "bool") {
    input = el("input", { id, name: key, type: "checkbox" });
  } else if (kind === "number") {
    input = el("input", { id, name: key, type: "number", step: isInteger(node) ? "1" : "any", inputmode: "decimal" });
  } else {
    input = el("input", { id, name: key, type: "text", spellcheck: "false", autocomplete: "off" });
  }
  const field = { key, path, kind, nullable: allowsNull(node), input, words: kind === "list" ? enumOf(node) || [] : [] };
  if (kind === "list") {
    const word = field.words.length ? `  or  ${field.words.join(" / ")}` : "";
    input.placeholder = field.nullable ? "null (none)" : `e.g. 1, 2, 3  or  [1, 2, 3]${word}`;
    input.classList.add("mono");
  }
  field.defaultText = el("span", { class: "default" });
  field.error = el("span", { class: "field-error", id: `${id}-error`, role: "alert", dataset: { errorFor: key } });
  field.error.hidden = true;
  input.setAttribute("aria-describedby", `${id}-help ${id}-error`);
  const help = el("span", { class: "help", id: `${id}-help` }, plain(node.description), " ", field.defaultText);
  const labelEl = el("label", { for: id, class: "field-label" }, el("code", { text: label }));
  field.wrapper =
    kind === "bool"
      ? el("div", { class: "field checkbox", dataset: { field: key } }, el("label", { class: "field-label" }, input, el("code", { text: label })), help, field.error)
      : el("div", { class: "field", dataset: { field: key } }, labelEl, input, help, field.error);
  input.addEventListener(kind === "bool" || kind === "enum" ? "change" : "input", () => {
    clearError(field);
    updateChanged();
  });
  fields.set(key, field);
  sectionEl.append(field.wrapper);
}

function buildForm() {
  const base = presets[presetSelect.value] || Object.values(presets)[0];
  container.replaceChildren();
  const general = Object.keys(base).filter((k) => base[k] === null || typeof base[k] !== "object" || Array.isArray(base[k]));
  const sections = Object.keys(base).filter((k) => !general.includes(k));
  const fieldset = (title, description, keys, prefix) => {
    const grid = el("div", { class: "field-grid" });
    const box = el(
      "fieldset",
      { class: "card section", dataset: { section: prefix || "general" } },
      el("legend", { text: title }),
      description ? el("p", { class: "section-help", text: description }) : null,
      grid,
    );
    for (const key of keys) buildField(prefix ? [prefix, key] : [key], grid);
    container.append(box);
  };
  fieldset("general", "", general, null);
  for (const section of sections) {
    const node = propertySchema([section]);
    fieldset(section, plain(node.description), Object.keys(base[section]), section);
  }
  fillFrom(base);
}

/** Show a preset's values; with `previous`, keep the fields the user changed from it. */
function fillFrom(config, previous = null) {
  for (const field of fields.values()) {
    const value = getPath(config, field.path);
    let keep = false;
    if (previous) {
      try {
        keep = !sameValue(readField(field), getPath(previous, field.path));
      } catch {
        keep = true; // unparseable text is the user's work in progress
      }
    }
    if (!keep) writeField(field, value);
    field.defaultText.textContent = `Default: ${defaultText(field, value)}`;
  }
  updateChanged();
}

function defaultText(field, value) {
  if (field.kind === "list") return listText(value) || "null";
  return typeof value === "string" ? value || '""' : JSON.stringify(value);
}

// ---- changes, body, errors ----------------------------------------------------------------

/** The request body: the preset plus every field that differs from it. Throws on bad input. */
function buildBody({ markErrors = false } = {}) {
  const preset = presetSelect.value;
  const base = presets[preset];
  const body = { preset };
  const errors = [];
  for (const field of fields.values()) {
    let value;
    try {
      value = readField(field);
    } catch (err) {
      errors.push({ field, msg: err.message });
      continue;
    }
    if (sameValue(value, getPath(base, field.path))) continue;
    let target = body;
    for (const part of field.path.slice(0, -1)) target = target[part] ??= {};
    target[field.path.at(-1)] = value;
  }
  if (markErrors) for (const { field, msg } of errors) showError(field, msg);
  return { body, errors };
}

function updateChanged() {
  const base = presets[presetSelect.value];
  let n = 0;
  for (const field of fields.values()) {
    let changed = true;
    try {
      changed = !sameValue(readField(field), getPath(base, field.path));
    } catch {
      /* unparseable counts as changed */
    }
    field.wrapper.classList.toggle("changed", changed);
    n += changed ? 1 : 0;
  }
  changedCount.textContent = n ? `${n} field${n > 1 ? "s" : ""} changed from the ${presetSelect.value} preset` : `All fields at the ${presetSelect.value} preset`;
}

function clearError(field) {
  field.error.hidden = true;
  field.error.replaceChildren();
  field.wrapper.classList.remove("invalid");
  field.input.removeAttribute("aria-invalid");
}

function clearErrors() {
  for (const field of fields.values()) clearError(field);
  presetSelect.removeAttribute("aria-invalid");
  summary.hidden = true;
  summary.replaceChildren();
}

function showError(field, msg) {
  field.error.append(el("span", { text: msg }));
  field.error.hidden = false;
  field.wrapper.classList.add("invalid");
  field.input.setAttribute("aria-invalid", "true");
}

/** The form field a pydantic `loc` names: the longest prefix of loc[1:] that is a field. */
function fieldForLoc(loc) {
  const parts = (loc || []).slice(loc && loc[0] === "body" ? 1 : 0).map(String);
  for (let n = parts.length; n > 0; n--) {
    const key = parts.slice(0, n).join(".");
    if (fields.has(key)) return fields.get(key);
    if (key === "preset") return "preset";
  }
  return null;
}

function showSummary(title, items) {
  summary.replaceChildren(el("strong", { text: title }), items.length ? el("ul", {}, ...items) : null);
  summary.hidden = false;
}

function summaryItem(field, label, msg) {
  if (!field || field === "preset") return el("li", {}, label ? el("code", { text: label }) : null, label ? ": " : "", msg);
  const link = el("a", { href: `#${field.input.id}`, text: field.key });
  link.addEventListener("click", (event) => {
    event.preventDefault();
    field.input.focus();
  });
  return el("li", {}, link, ": ", msg);
}

function showServerErrors(detail) {
  const items = [];
  let first = null;
  for (const d of detail) {
    const field = fieldForLoc(d.loc);
    const locText = (d.loc || []).filter((p) => p !== "body").join(".");
    if (field === "preset") presetSelect.setAttribute("aria-invalid", "true");
    else if (field) showError(field, d.msg);
    first ??= field && field !== "preset" ? field : null;
    items.push(summaryItem(field, field && field !== "preset" ? field.key : locText, d.msg));
  }
  showSummary(`The server refused the config (${detail.length} problem${detail.length > 1 ? "s" : ""}):`, items);
  focusField(first);
}

function focusField(field) {
  if (field) {
    field.input.focus({ preventScroll: true });
    field.wrapper.scrollIntoView({ block: "center", behavior: "smooth" });
  } else {
    summary.scrollIntoView({ block: "center", behavior: "smooth" });
  }
}

// ---- wiring -------------------------------------------------------------------------------

let submitting = false;

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (submitting) return;
  clearErrors();
  const { body, errors } = buildBody({ markErrors: true });
  if (errors.length) {
    showSummary("Fix these fields first:", errors.map(({ field, msg }) => summaryItem(field, field.key, msg)));
    focusField(errors[0].field);
    return;
  }
  submitting = true;
  form.classList.add("busy");
  for (const b of form.querySelectorAll("button[type=submit]")) b.disabled = true;
  try {
    const job = await api("/api/jobs", { method: "POST", body });
    location.assign(`${ROOT}/jobs/${encodeURIComponent(job.id)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 422 && Array.isArray(err.body?.detail)) showServerErrors(err.body.detail);
    else showSummary(`Could not start the job: ${err.message}`, []);
    submitting = false;
    form.classList.remove("busy");
    for (const b of form.querySelectorAll("button[type=submit]")) b.disabled = false;
  }
});

let shownPreset = presetSelect.value;
presetSelect.addEventListener("change", () => {
  clearErrors();
  fillFrom(presets[presetSelect.value], presets[shownPreset]);
  shownPreset = presetSelect.value;
});

$("reset-form").addEventListener("click", () => {
  clearErrors();
  fillFrom(presets[presetSelect.value]);
});

async function init() {
  try {
    const data = await api("/api/config/schema");
    presets = { default: data.defaults, notebook: data.notebook };
    schema = data.json_schema || {};
  } catch (err) {
    container.replaceChildren(el("p", { class: "notice error", text: `Could not load the config schema: ${err.message}` }));
    return;
  }
  const wanted = new URLSearchParams(location.search).get("preset");
  if (wanted && presets[wanted]) presetSelect.value = wanted;
  shownPreset = presetSelect.value;
  buildForm();
  form.dataset.ready = "true";
}

init();
