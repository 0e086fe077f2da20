// A training-config form built from GET /api/config/schema: one input per config key, grouped in
// a fieldset per section, showing a preset's values, with the schema's help texts and the
// server's 422 messages next to the fields. The new-job form (pages/new_job.js) and the
// new-sweep form (pages/sweep_new.js) both build theirs here; a page adds its own controls to
// each field through `decorate(field)`.
import { ApiError, api } from "./api.js";
import { el } from "./dom.js";

// ---- schema helpers -----------------------------------------------------------------------

/** Follow $ref / allOf wrappers to the sub-schema that carries type, enum or properties. */
function resolveIn(schema, node) {
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

/** A docstring-style description as plain text: ``x`` and :func:`x` become x. */
export function plain(text) {
  return (text || "").replace(/:\w+:`~?([^`]+)`/g, "$1").replace(/``([^`]+)``/g, "$1").replace(/`([^`]+)`/g, "$1");
}

// ---- values: display and parsing ----------------------------------------------------------

export function getPath(obj, path) {
  return path.reduce((o, part) => (o === null || o === undefined ? undefined : o[part]), obj);
}

/** Text shown in a list input: "4, 8, 16" for flat lists, JSON for nested ones, "" for null. */
export function listText(value) {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value) && value.every((v) => !Array.isArray(v) && typeof v !== "object")) return value.join(", ");
  return JSON.stringify(value).replace(/,/g, ", ");
}

/** A list typed as JSON ("[[8], [16]]") or comma-separated ("4, 8" or "norm3_2, norm4_2"). */
export function parseList(text, nullable) {
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

/** One value typed as text for a field of `kind` ("number", "bool", "enum", "list", "text"). */
export function parseValue(field, text) {
  const t = text.trim();
  switch (field.kind) {
    case "bool":
      if (t === "true" || t === "false") return t === "true";
      throw new Error(`write true or false, not ${t}`);
    case "number": {
      if (t === "" && field.nullable) return null;
      const n = Number(t);
      if (t === "" || Number.isNaN(n)) throw new Error(t === "" ? "a number is required" : `not a number: ${t}`);
      return n;
    }
    case "enum": {
      const unquoted = t.replace(/^["']|["']$/g, "");
      const match = field.options.find((v) => String(v) === unquoted);
      if (match === undefined) throw new Error(`one of ${field.options.join(", ")}, not ${t}`);
      return match;
    }
    case "list":
      if (field.words.includes(t)) return t;
      return parseList(t, field.nullable);
    default:
      return t.replace(/^["']|["']$/g, "");
  }
}

export function sameValue(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The form over `container`: `build(presets, schema, preset)` makes the fields; the other
 * members read, fill and mark them. `decorate(field)` runs for each new field (after its input,
 * help and error exist, before it is placed); `onInput(field)` on every edit.
 */
export function createConfigForm({ container, decorate = null, onInput = null }) {
  const fields = new Map(); // "train.batch_size" -> {key, path, kind, nullable, options, words, input, error, wrapper, defaultText}
  let presets = {};
  let schema = {};

  const resolve = (node) => resolveIn(schema, node);

  function propertySchema(path) {
    let node = resolve(schema);
    for (const part of path) node = resolve((node.properties || {})[part]);
    return node;
  }

  function enumOf(node) {
    if (node.enum) return node.enum;
    if (node.const !== undefined) return [node.const];
    for (const alt of node.anyOf || node.oneOf || []) {
      const values = enumOf(resolve(alt));
      if (values) return values;
    }
    return null;
  }

  const allowsNull = (node) => (node.anyOf || node.oneOf || []).some((alt) => resolve(alt).type === "null") || node.type === "null";
  const isInteger = (node) => node.type === "integer" || (node.anyOf || []).some((alt) => resolve(alt).type === "integer");

  function fieldKind(path, node) {
    const values = Object.values(presets).map((p) => getPath(p, path));
    // A list that also takes a word ("auto" for priors.scales) is a list field that accepts the word.
    if (values.some(Array.isArray) || node.type === "array" || (node.anyOf || []).some((a) => resolve(a).type === "array")) return "list";
    if (enumOf(node)) return "enum";
    if (values.some((v) => typeof v === "boolean")) return "bool";
    if (values.some((v) => typeof v === "number")) return "number";
    // A number that may be null (matching.neg_iou): the presets' null says nothing, the schema does.
    const numeric = (n) => n.type === "number" || n.type === "integer";
    if (numeric(node) || (node.anyOf || []).some((a) => numeric(resolve(a)))) return "number";
    return "text";
  }

  /** The value of one field as it would be sent; throws Error with a message for bad input. */
  function readField(field) {
    const { input, kind } = field;
    if (kind === "bool") return input.checked;
    if (kind === "enum") return JSON.parse(input.value);
    if (kind === "list" || kind === "number") return parseValue(field, input.value);
    return input.value;
  }

  function writeField(field, value) {
    const { input, kind } = field;
    if (kind === "bool") input.checked = Boolean(value);
    else if (kind === "enum") input.value = JSON.stringify(value);
    else if (kind === "list") input.value = typeof value === "string" ? value : listText(value);
    else input.value = value === null || value === undefined ? "" : String(value);
  }

  function buildField(path, sectionEl) {
    const key = path.join(".");
    const node = propertySchema(path);
    const kind = fieldKind(path, node);
    const id = `f-${key.replace(/\./g, "-")}`;
    const label = node.title && node.title.toLowerCase() !== path.at(-1).replace(/_/g, " ") ? node.title : path.at(-1);
    const options = enumOf(node) || [];
    let input;
    if (kind === "enum") {
      input = el("select", { id, name: key }, ...options.map((v) => el("option", { value: JSON.stringify(v), text: String(v) })));
    } else if (kind === "bool") {
      input = el("input", { id, name: key, type: "checkbox" });
    } else if (kind === "number") {
      input = el("input", { id, name: key, type: "number", step: isInteger(node) ? "1" : "any", inputmode: "decimal" });
    } else {
      input = el("input", { id, name: key, type: "text", spellcheck: "false", autocomplete: "off" });
    }
    const field = { key, path, kind, id, integer: isInteger(node), nullable: allowsNull(node), options, input, words: kind === "list" ? options : [] };
    if (kind === "number" && field.nullable) input.placeholder = "null (none)";
    if (kind === "list") {
      const word = field.words.length ? `  or  ${field.words.join(" / ")}` : "";
      input.placeholder = field.nullable ? "null (none)" : `e.g. 1, 2, 3  or  [1, 2, 3]${word}`;
      input.classList.add("mono");
    }
    field.defaultText = el("span", { class: "default" });
    field.error = el("span", { class: "field-error", id: `${id}-error`, role: "alert", dataset: { errorFor: key } });
    field.error.hidden = true;
    input.setAttribute("aria-describedby", `${id}-help ${id}-error`);
    field.help = el("span", { class: "help", id: `${id}-help` }, plain(node.description), " ", field.defaultText);
    const labelEl = el("label", { for: id, class: "field-label" }, el("code", { text: label }));
    field.wrapper =
      kind === "bool"
        ? el("div", { class: "field checkbox", dataset: { field: key } }, el("label", { class: "field-label" }, input, el("code", { text: label })), field.help, field.error)
        : el("div", { class: "field", dataset: { field: key } }, labelEl, input, field.help, field.error);
    input.addEventListener(kind === "bool" || kind === "enum" ? "change" : "input", () => {
      clearError(field);
      if (onInput) onInput(field);
    });
    fields.set(key, field);
    if (decorate) decorate(field);
    sectionEl.append(field.wrapper);
  }

  /** Make every field, showing `preset`'s values. */
  function build(presetsIn, schemaIn, preset) {
    presets = presetsIn;
    schema = schemaIn || {};
    fields.clear();
    const base = presets[preset] || Object.values(presets)[0];
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
    for (const section of sections) fieldset(section, plain(propertySchema([section]).description), Object.keys(base[section]), section);
    fillFrom(base);
  }

  /** Show a config's values; with `previous`, keep the fields the user changed from it. */
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
      field.defaultText.textContent = `Default: ${field.kind === "list" ? listText(value) || "null" : typeof value === "string" ? value || '""' : JSON.stringify(value)}`;
    }
  }

  /** Whether a field's value differs from `preset`'s (unparseable text counts as changed). */
  /** Put a config's values in the fields it has (a job's, to train again); the defaults shown stay. */
  function setValues(config) {
    for (const field of fields.values()) {
      const value = getPath(config, field.path);
      if (value !== undefined) writeField(field, value);
    }
  }

  function isChanged(field, preset) {
    try {
      return !sameValue(readField(field), getPath(presets[preset], field.path));
    } catch {
      return true;
    }
  }

  /**
   * The config a client sends: `{preset}` plus every field that differs from the preset, except
   * those `skip(field)` leaves out. `errors` lists the fields whose text does not parse.
   */
  function changedConfig(preset, { skip = null, markErrors = false } = {}) {
    const body = { preset };
    const errors = [];
    for (const field of fields.values()) {
      if (skip && skip(field)) continue;
      let value;
      try {
        value = readField(field);
      } catch (err) {
        errors.push({ field, msg: err.message });
        continue;
      }
      if (sameValue(value, getPath(presets[preset], field.path))) continue;
      let target = body;
      for (const part of field.path.slice(0, -1)) target = target[part] ??= {};
      target[field.path.at(-1)] = value;
    }
    if (markErrors) for (const { field, msg } of errors) showError(field, msg);
    return { body, errors };
  }

  function clearError(field) {
    field.error.hidden = true;
    field.error.replaceChildren();
    field.wrapper.classList.remove("invalid");
    field.input.removeAttribute("aria-invalid");
  }

  function showError(field, msg) {
    revealField(field);
    field.error.append(el("span", { text: msg }));
    field.error.hidden = false;
    field.wrapper.classList.add("invalid");
    field.input.setAttribute("aria-invalid", "true");
  }

  /** The field a config path names (["train", "batch_size"]): its longest prefix that is a field. */
  function fieldForPath(parts) {
    for (let n = parts.length; n > 0; n--) {
      const field = fields.get(parts.slice(0, n).map(String).join("."));
      if (field) return field;
    }
    return null;
  }

  return {
    fields,
    build,
    fillFrom,
    setValues,
    readField,
    isChanged,
    changedConfig,
    clearError,
    clearErrors: () => fields.forEach(clearError),
    showError,
    fieldForPath,
    presets: () => presets,
  };
}

/** A link to a field in an error summary: focuses its input. */
export function fieldLink(field, text = field.key) {
  const link = el("a", { href: `#${field.input.id}`, text });
  link.addEventListener("click", (event) => {
    event.preventDefault();
    field.input.focus();
  });
  return link;
}

/** Bring a field (or, without one, `fallback`) into view, focusing the field's input. */
export function focusField(field, fallback) {
  if (field) {
    revealField(field);
    field.input.focus({ preventScroll: true });
    field.wrapper.scrollIntoView({ block: "center", behavior: "smooth" });
  } else if (fallback) {
    fallback.scrollIntoView({ block: "center", behavior: "smooth" });
  }
}

/** Open the closed <details> (the form's Advanced settings) a field sits in, so its message shows. */
export function revealField(field) {
  for (let node = field.wrapper.closest("details"); node; node = node.parentElement?.closest("details")) node.open = true;
}

/**
 * POST `body` to `url` from `form`, one submission at a time: the form is busy and its submit
 * buttons are off until the answer. On success the page goes to `next(answer)`; on failure
 * `onError(err)` shows why (a 422's `detail` list when `isValidationError(err)`) and the form
 * comes back. Returns without posting while a submission is under way.
 */
export async function postForm(form, url, body, next, onError) {
  if (isSubmitting(form)) return;
  const busy = (on) => {
    form.dataset.submitting = String(on);
    form.classList.toggle("busy", on);
    for (const b of form.querySelectorAll("button[type=submit]")) b.disabled = on;
  };
  busy(true);
  try {
    const answer = await api(url, { method: "POST", body });
    location.assign(next(answer));
  } catch (err) {
    onError(err);
    busy(false);
  }
}

/** Whether `form` has a postForm submission under way. */
export function isSubmitting(form) {
  return form.dataset.submitting === "true";
}

/** Whether `err` is a 422 whose body lists the problems (FastAPI's `detail`). */
export function isValidationError(err) {
  return err instanceof ApiError && err.status === 422 && Array.isArray(err.body?.detail);
}
