// dataset.html, the dataset browser: pages of thumbnails (PNG + SVG boxes, cheap for 48 images)
// and statistics, of the built-in generator, a job's dataset (?job=ID) or an imported dataset
// (?dataset=ID, the selector).
import { ROOT, api } from "../lib/api.js";
import { $, el, svgEl } from "../lib/dom.js";
import { fillDatasetSelect } from "../lib/datasets.js";
import { classColor, drawFigure } from "../lib/plots.js";

const params = new URLSearchParams(location.search);
let job = params.get("job");
let dataset = params.get("dataset");
const state = {
  split: params.get("split") === "train" ? "train" : "val",
  offset: Math.max(0, Number(params.get("offset")) || 0),
  limit: Number(params.get("limit")) || 24,
  total: 0,
};

function query(extra = {}) {
  const q = new URLSearchParams(extra);
  if (job) q.set("job", job);
  if (dataset && !job) q.set("dataset", dataset);
  const s = q.toString();
  return s ? `?${s}` : "";
}

function thumb(item, size) {
  const svg = svgEl("svg", { viewBox: `0 0 ${size} ${size}`, class: "thumb-boxes", "aria-hidden": "true" });
  const stroke = Math.max(1, size / 96);
  for (const b of item.boxes) {
    const [x1, y1, x2, y2] = b.box;
    const color = classColor(b.label);
    svg.append(svgEl("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, stroke: color, fill: "none", "stroke-width": 1.5 * stroke }));
    const label = svgEl("text", { x: x1 + stroke, y: Math.max(y1 - 2 * stroke, 9 * stroke), fill: color, "font-size": 10 * stroke, "font-weight": 700 });
    label.textContent = b.name ?? String(b.label);
    svg.append(label);
  }
  const labels = item.boxes.map((b) => b.name ?? b.label).join(" ");
  const what = item.file ? `${item.file}: ${item.boxes.length} objects` : `digits ${labels}`;
  return el(
    "a",
    { class: "thumb", href: `${ROOT}/dataset/${state.split}/${item.index}${query()}`, title: `#${item.index}: ${labels}`, dataset: { index: item.index } },
    el("div", { class: "thumb-img" }, el("img", { src: item.url, alt: `${state.split} image ${item.index}: ${what}`, width: size, height: size, loading: "lazy" }), svg),
    el("span", { class: "thumb-caption" }, el("span", { class: "mono", text: `#${item.index}` }), el("span", { class: "muted", text: `${item.boxes.length} ${item.file ? "objects" : "digits"}` })),
  );
}

function syncUrl() {
  const q = new URLSearchParams({ split: state.split, offset: state.offset, limit: state.limit });
  if (job) q.set("job", job);
  if (dataset && !job) q.set("dataset", dataset);
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

async function loadPage() {
  $("dataset-error").hidden = true;
  try {
    const data = await api(`/api/datasets/${state.split}/images${query({ offset: state.offset, limit: state.limit })}`);
    state.total = data.total;
    describe(data);
    const grid = $("thumbs");
    grid.replaceChildren(...data.items.map((item) => thumb(item, data.image_size)));
    grid.dataset.ready = "true";
    const last = Math.min(state.offset + state.limit, state.total);
    $("page-label").textContent = `${state.offset}–${last - 1} of ${state.total}`;
    $("prev-page").disabled = state.offset === 0;
    $("next-page").disabled = last >= state.total;
    syncUrl();
  } catch (err) {
    $("dataset-error").textContent = err.message;
    $("dataset-error").hidden = false;
  }
}

async function loadStats() {
  try {
    const data = await api(`/api/datasets/${state.split}/stats${query({ n: 500 })}`);
    const o = data.objects_per_image;
    $("stats-summary").textContent =
      `${data.num_images} images, ${data.num_boxes} boxes · ${o.mean.toFixed(2)} objects per image · ` +
      `median box ${data.width.median}×${data.height.median} px`;
    for (const [name, fig] of Object.entries(data.figures)) drawFigure(`stats-${name}`, fig);
  } catch (err) {
    $("stats-summary").textContent = `statistics unavailable: ${err.message}`;
  }
}

function describe(data) {
  const name = data.dataset_name;
  let text;
  if (job) text = `The images of job ${job}'s data config (dataset ${name}), with their ground-truth boxes.`;
  else if (data.dataset === "mnist") text = "The built-in MNIST-detection images with their ground-truth boxes.";
  else text = `The imported dataset ${name} at the network input (${data.image_size}×${data.image_size} px, unaugmented), with its ground-truth boxes.`;
  $("dataset-summary").textContent = text;
  const select = $("dataset-select");
  if (![...select.options].some((o) => o.value === data.dataset)) select.append(el("option", { value: data.dataset, text: name }));
  select.value = data.dataset;
}

function init() {
  $("split").value = state.split;
  $("page-size").value = String(state.limit);
  $("dataset-select").addEventListener("change", () => {
    dataset = $("dataset-select").value;
    job = null; // a chosen dataset replaces a job's
    state.offset = 0;
    loadPage();
    loadStats();
  });
  fillDatasetSelect($("dataset-select"));
  $("split").addEventListener("change", () => {
    state.split = $("split").value;
    state.offset = 0;
    loadPage();
    loadStats();
  });
  $("page-size").addEventListener("change", () => {
    state.limit = Number($("page-size").value);
    state.offset = Math.floor(state.offset / state.limit) * state.limit;
    loadPage();
  });
  $("prev-page").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit);
    loadPage();
  });
  $("next-page").addEventListener("click", () => {
    state.offset += state.limit;
    loadPage();
  });
  loadPage();
  loadStats();
}

init();
