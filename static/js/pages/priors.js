// priors.html, the prior explorer: a draft prior config, the priors on one image, and the
// coverage report. Settings changes are debounced (100 ms) and answered by two requests in
// parallel; the priors of the cell under the pointer are drawn here from the layers' shapes,
// without a round trip. "Suggest priors" asks the server for priors fitted to the selected
// dataset's training boxes, puts them in the draft (undoable) and redraws.
import { ApiError, api } from "../lib/api.js";
import { $, el } from "../lib/dom.js";
import { fillDatasetSelect } from "../lib/datasets.js";
import { ZOOMABLE, drawFigure } from "../lib/plots.js";

const root = $("priors-root");
const job = root.dataset.jobId || null;
const params = new URLSearchParams(location.search);
// ?draft=<config JSON>: the new-job form's draft (its plan's config), explored as it would train.
const fromDraft = (() => {
  try {
    const parsed = JSON.parse(params.get("draft") || "null");
    return parsed && typeof parsed === "object" && parsed.priors && parsed.model ? parsed : null;
  } catch {
    return null;
  }
})();
const DEBOUNCE_MS = 100;
const SUGGEST_IMAGES = 1000; // training images the suggestion fits: ~1-3 s on two cores

const state = { base: null, layers: [], pinned: null, exploreSeq: 0, coverageSeq: 0, coverageVersion: 0, baseShapes: [], undo: null, suggestions: 0 };

const pct = (v) => `${(100 * v).toFixed(1)}%`;

const numbers = (text) =>
  text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(Number);

function scaleInputs(scales) {
  const box = $("scales-fields");
  box.replaceChildren(
    ...scales.map((group, i) =>
      el(
        "label",
        { class: "field" },
        `scales of layer ${i} `,
        el("span", { class: "muted", text: "(px, one or more)" }),
        el("input", { type: "text", class: "scale-input", name: `scales.${i}`, "data-layer": i, value: (Array.isArray(group) ? group : [group]).join(", ") }),
      ),
    ),
  );
}

function fillForm(config) {
  $("strides").value = config.priors.strides.join(", ");
  scaleInputs(config.priors.scales);
  $("ratios").value = config.priors.ratios.join(", ");
  $("iou-threshold").value = config.matching.iou_threshold;
  $("force-best").checked = config.matching.force_best;
  const layers = config.model.source_layers;
  $("layer").replaceChildren(...layers.map((name, i) => el("option", { value: i, text: `${i}: ${name} (stride ${config.priors.strides[i]})` })));
}

function draft() {
  const config = {
    priors: {
      strides: numbers($("strides").value),
      scales: [...document.querySelectorAll(".scale-input")].map((input) => numbers(input.value)),
      ratios: numbers($("ratios").value),
    },
    matching: { iou_threshold: Number($("iou-threshold").value), force_best: $("force-best").checked },
  };
  if (fromDraft && !job) {
    // The form's whole draft (input size, layers, classes), with the priors and matching edited here.
    const dataset = $("dataset-select").value || fromDraft.data.dataset;
    return { ...structuredClone(fromDraft), ...config, data: { ...fromDraft.data, dataset } };
  }
  if (!job) {
    config.preset = $("preset").value;
    const dataset = $("dataset-select").value;
    if (dataset && dataset !== "mnist") config.data = { dataset };
  }
  return config;
}

function showError(err) {
  const box = $("priors-error");
  if (!err) {
    box.hidden = true;
    return;
  }
  let text = err.message;
  if (err instanceof ApiError && Array.isArray(err.body?.detail)) {
    text = err.body.detail.map((d) => `${d.loc.slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  box.textContent = text;
  box.hidden = false;
}

function cellShapes(layerIndex, row, col) {
  const layer = state.layers[layerIndex];
  if (!layer) return [];
  const shapeSel = $("shape").value;
  const cx = layer.offset + col * layer.step;
  const cy = layer.offset + row * layer.step;
  const shapes = [
    {
      type: "rect",
      x0: col * layer.step,
      y0: row * layer.step,
      x1: (col + 1) * layer.step,
      y1: (row + 1) * layer.step,
      line: { width: 0 },
      fillcolor: "rgba(255, 255, 255, 0.35)",
      layer: "above",
    },
  ];
  layer.shapes.forEach(([w, h], k) => {
    if (shapeSel !== "" && Number(shapeSel) !== k) return;
    shapes.push({ type: "rect", x0: cx - w / 2, y0: cy - h / 2, x1: cx + w / 2, y1: cy + h / 2, line: { color: "#ffffff", width: 1.5, dash: "dash" }, layer: "above" });
  });
  const names = layer.shapes
    .map(([w, h], k) => (shapeSel === "" || Number(shapeSel) === k ? `${w}×${h}` : null))
    .filter(Boolean)
    .join(", ");
  $("cell-info").textContent = `${layer.source_layer} cell (${row}, ${col}), centre (${cx}, ${cy}): priors ${names} px`;
  return shapes;
}

function drawCell(row, col) {
  Plotly.relayout("prior-figure", { shapes: cellShapes(Number($("layer").value), row, col) });
}

function cellAt(x, y) {
  const layer = state.layers[Number($("layer").value)];
  if (!layer) return null;
  const clamp = (v, n) => Math.min(n - 1, Math.max(0, v));
  return [clamp(Math.floor(y / layer.step), layer.grid[0]), clamp(Math.floor(x / layer.step), layer.grid[1])];
}

/** Image pixel [x, y] under a mouse event, or null outside the image. */
function pointerPixel(div, ev) {
  const full = div._fullLayout;
  if (!full || !full.xaxis || !state.layers.length) return null;
  const rect = div.getBoundingClientRect();
  const x = full.xaxis.p2d(ev.clientX - rect.left - full.xaxis._offset);
  const y = full.yaxis.p2d(ev.clientY - rect.top - full.yaxis._offset);
  const size = state.imageSize;
  if (!Number.isFinite(x) || !Number.isFinite(y) || x < 0 || y < 0 || x >= size || y >= size) return null;
  return [x, y];
}

function refillShapes() {
  const layer = state.layers[Number($("layer").value)];
  if (!layer) return;
  const current = $("shape").value;
  $("shape").replaceChildren(el("option", { value: "", text: "all" }), ...layer.shapes.map(([w, h], k) => el("option", { value: k, text: `${k}: ${w}×${h} px` })));
  if (current !== "" && Number(current) < layer.shapes.length) $("shape").value = current;
}

function renderExplore(data) {
  state.layers = data.layers;
  state.imageSize = data.image_size;
  refillShapes();
  const div = $("prior-figure");
  drawFigure(div, data.figure, ZOOMABLE);
  if (!div.dataset.bound) {
    div.dataset.bound = "true";
    // The pointer's pixel, wherever it is over the plot (boxes and fills included).
    div.addEventListener("mousemove", (ev) => {
      const p = pointerPixel(div, ev);
      if (p) drawCell(...cellAt(p[0], p[1]));
    });
    div.addEventListener("mouseleave", () => {
      if (state.pinned) drawCell(...state.pinned);
    });
    div.addEventListener("click", (ev) => {
      const p = pointerPixel(div, ev);
      if (!p) return;
      state.pinned = cellAt(p[0], p[1]);
      drawCell(...state.pinned);
    });
  }
  if (state.pinned) drawCell(...state.pinned);
  const unmatched = data.unmatched.length;
  $("image-stats").textContent =
    `${data.ground_truths.length} objects · ${unmatched ? `${unmatched} without a prior ≥ ${data.iou_threshold}` : "all matched"} · ` +
    `${data.force_best ? data.positives_forced : data.positives} positives · ${data.num_priors} priors`;
  $("gt-table").querySelector("tbody").replaceChildren(
    ...data.ground_truths.map((gt) => {
      const [x1, y1, x2, y2] = gt.box;
      return el(
        "tr",
        { class: gt.matched ? "" : "row-unmatched" },
        el("td", { text: gt.index }),
        el("td", { text: gt.name }),
        el("td", { class: "mono", text: `${x2 - x1}×${y2 - y1} (${gt.size_bucket})` }),
        el("td", { class: "mono", text: gt.best_iou.toFixed(2) }),
        el("td", { text: gt.matched ? gt.priors.length : `none ≥ ${data.iou_threshold}${data.force_best ? " (forced: 1)" : ""}` }),
      );
    }),
  );
}

function renderCoverage(data) {
  $("coverage-headline").textContent =
    `${data.num_gt} ground truths in ${data.num_images} ${data.split} images · ${pct(data.share_matched)} matched at IoU ≥ ${data.iou_threshold}` +
    ` · ${pct(data.share_matched_forced)} forced · ${data.positives_per_image[data.force_best ? "mean" : "mean"].toFixed(1)} positives/image`;
  $("coverage-words").replaceChildren(...data.words.map((w) => el("li", { text: w })));
  const figs = { buckets: "coverage-buckets", best_iou: "coverage-best-iou", positives: "coverage-positives" };
  for (const [name, id] of Object.entries(figs)) drawFigure(id, data.figures[name]);
  state.coverageVersion += 1;
  $("coverage-card").dataset.version = String(state.coverageVersion);
  $("coverage-card").dataset.shareMatched = String(data.share_matched);
}

async function refresh() {
  const config = draft();
  const common = { config, split: $("split").value };
  if (job) common.job = job;
  const started = performance.now();
  const exploreSeq = ++state.exploreSeq;
  const coverageSeq = ++state.coverageSeq;
  const body = { ...common, index: Math.max(0, Number($("index").value) || 0), layer: Number($("layer").value) || 0 };
  if ($("shape").value !== "") body.shape = Number($("shape").value);
  if (state.pinned) body.cell = state.pinned;
  let exploreMs = null;
  const explore = api("/api/priors/explore", { method: "POST", body })
    .then((data) => {
      if (exploreSeq !== state.exploreSeq) return;
      renderExplore(data);
      exploreMs = performance.now() - started;
      showError(null);
    })
    .catch((err) => {
      if (exploreSeq === state.exploreSeq) showError(err);
    });
  const n = Math.min(2000, Math.max(1, Number($("coverage-n").value) || 300));
  const coverage = api("/api/priors/coverage", { method: "POST", body: { ...common, split: "val", n } })
    .then((data) => {
      if (coverageSeq === state.coverageSeq) renderCoverage(data);
    })
    .catch((err) => {
      if (coverageSeq === state.coverageSeq) showError(err);
    });
  await Promise.all([explore, coverage]);
  if (coverageSeq === state.coverageSeq) {
    const total = performance.now() - started;
    $("timing").textContent = `redrawn in ${Math.round(total)} ms (image ${exploreMs === null ? "–" : Math.round(exploreMs)} ms)`;
    root.dataset.ready = "true";
  }
}

/** The draft's scales (one text per layer) and ratios as typed: what Undo puts back. */
function typedPriors() {
  return { scales: [...document.querySelectorAll(".scale-input")].map((input) => input.value), ratios: $("ratios").value };
}

function clearSuggestion() {
  state.undo = null;
  $("suggest-result").hidden = true;
}

function renderSuggestion(data) {
  const { before, after } = data;
  const perCell = (r) => [...new Set(r.priors_per_cell)].join("/");
  $("suggest-headline").replaceChildren(
    el("strong", { text: `${pct(before.share_matched)} → ${pct(after.share_matched)}` }),
    ` of ${data.num_gt} boxes (${data.num_images} ${data.split} images of ${data.dataset_name}) have a prior at IoU ≥ ${data.iou_threshold}.` +
      ` Priors per cell ${perCell(before)} → ${perCell(after)} (${after.num_priors} in all); ${(data.elapsed_ms / 1000).toFixed(1)} s.`,
  );
  const rows = after.buckets
    .map((b, i) => [before.buckets[i], b])
    .filter(([b]) => b.count > 0)
    .map(([b, a]) => {
      const change = a.matched > b.matched ? "better" : a.matched < b.matched ? "worse" : "";
      return el(
        "tr",
        {},
        el("td", { text: b.label }),
        el("td", { class: "mono", text: b.count }),
        el("td", { class: "mono", text: pct(b.share_matched) }),
        el("td", { class: `mono ${change}`.trim(), text: pct(a.share_matched) }),
      );
    });
  $("suggest-buckets").querySelector("tbody").replaceChildren(...rows);
  const box = $("suggest-result");
  box.hidden = false;
  state.suggestions += 1;
  box.dataset.version = String(state.suggestions);
  box.dataset.shareBefore = String(before.share_matched);
  box.dataset.shareAfter = String(after.share_matched);
}

async function suggestPriors() {
  const button = $("suggest-button");
  const perCell = Math.min(32, Math.max(1, Math.round(Number($("suggest-per-cell").value)) || 6));
  $("suggest-per-cell").value = perCell;
  const body = { config: draft(), per_cell: perCell, split: "train", n: SUGGEST_IMAGES };
  if (job) body.job = job;
  button.disabled = true;
  button.textContent = "Fitting…";
  try {
    const data = await api("/api/priors/suggest", { method: "POST", body });
    state.undo = typedPriors();
    scaleInputs(data.priors.scales);
    $("ratios").value = data.priors.ratios.join(", ");
    renderSuggestion(data);
    showError(null);
    await refresh(); // the image, the cell priors and the coverage report of the new draft
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
    button.textContent = "Suggest priors";
  }
}

function undoSuggestion() {
  if (!state.undo) return;
  scaleInputs(state.undo.scales);
  $("ratios").value = state.undo.ratios;
  clearSuggestion();
  schedule();
}

let timer = null;
function schedule() {
  clearTimeout(timer);
  timer = setTimeout(refresh, DEBOUNCE_MS);
}

async function loadBase() {
  if (job) {
    const record = await api(`/api/jobs/${encodeURIComponent(job)}`);
    $("preset-field").hidden = true;
    $("dataset-field").hidden = true; // the job's dataset
    $("priors-summary").textContent = `The priors of job ${record.name} (${job}); edits here are a draft and change nothing in the job.`;
    return { job: record.config };
  }
  const schema = await api("/api/config/schema");
  if (fromDraft) {
    $("preset-field").hidden = true; // the draft holds every key
    $("priors-summary").textContent = `The new-job form's draft at ${fromDraft.data.image_size} px; edits here change nothing in the form.`;
  }
  return { notebook: schema.notebook, default: schema.defaults };
}

async function init() {
  try {
    state.base = await loadBase();
  } catch (err) {
    showError(err);
    return;
  }
  const preset = params.get("preset") === "default" ? "default" : "notebook";
  $("preset").value = preset;
  fillForm(job ? state.base.job : fromDraft || state.base[preset]);
  if (params.get("split") === "train") $("split").value = "train";
  if (Number(params.get("index")) > 0) $("index").value = String(Math.floor(Number(params.get("index"))));
  if (!job) await fillDatasetSelect($("dataset-select"), params.get("dataset") || (fromDraft && fromDraft.data.dataset) || "mnist");
  $("preset").addEventListener("change", () => {
    fillForm(state.base[$("preset").value]);
    state.pinned = null;
    clearSuggestion();
    schedule();
  });
  $("suggest-button").addEventListener("click", suggestPriors);
  $("suggest-undo").addEventListener("click", undoSuggestion);
  $("dataset-select").addEventListener("change", () => {
    // another dataset: other images; the image index restarts and the pin goes
    $("index").value = 0;
    state.pinned = null;
    clearSuggestion(); // it was fitted to the other dataset
    const q = new URLSearchParams(location.search);
    if ($("dataset-select").value === "mnist") q.delete("dataset");
    else q.set("dataset", $("dataset-select").value);
    history.replaceState(null, "", `${location.pathname}${q.size ? `?${q}` : ""}`);
  });
  $("layer").addEventListener("change", () => {
    state.pinned = null;
    refillShapes();
    schedule();
  });
  $("priors-form").addEventListener("input", (ev) => {
    if (ev.target.id === "layer" || ev.target.id === "preset" || ev.target.id === "suggest-per-cell") return;
    schedule();
  });
  $("priors-form").addEventListener("submit", (ev) => ev.preventDefault());
  await refresh();
}

init();
