// dataset.html, the dataset browser: pages of thumbnails (PNG + SVG boxes, cheap for 48 images)
// and statistics.
import { ROOT, api } from "../lib/api.js";
import { $, el, svgEl } from "../lib/dom.js";
import { classColor, drawFigure } from "../lib/plots.js";

const params = new URLSearchParams(location.search);
const job = params.get("job");
const state = {
  split: params.get("split") === "train" ? "train" : "val",
  offset: Math.max(0, Number(params.get("offset")) || 0),
  limit: Number(params.get("limit")) || 24,
  total: 0,
};

function query(extra = {}) {
  const q = new URLSearchParams(extra);
  if (job) q.set("job", job);
  const s = q.toString();
  return s ? `?${s}` : "";
}

function thumb(item, size) {
  const svg = svgEl("svg", { viewBox: `0 0 ${size} ${size}`, class: "thumb-boxes", "aria-hidden": "true" });
  for (const b of item.boxes) {
    const [x1, y1, x2, y2] = b.box;
    const color = classColor(b.label);
    svg.append(svgEl("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, stroke: color, fill: "none", "stroke-width": 1.5 }));
    const label = svgEl("text", { x: x1 + 1, y: Math.max(y1 - 2, 9), fill: color, "font-size": 10, "font-weight": 700 });
    label.textContent = String(b.label);
    svg.append(label);
  }
  const labels = item.boxes.map((b) => b.label).join(" ");
  return el(
    "a",
    { class: "thumb", href: `${ROOT}/dataset/${state.split}/${item.index}${query()}`, title: `#${item.index}: ${labels}`, dataset: { index: item.index } },
    el("div", { class: "thumb-img" }, el("img", { src: item.url, alt: `${state.split} image ${item.index}: digits ${labels}`, width: size, height: size, loading: "lazy" }), svg),
    el("span", { class: "thumb-caption" }, el("span", { class: "mono", text: `#${item.index}` }), el("span", { class: "muted", text: `${item.boxes.length} digits` })),
  );
}

function syncUrl() {
  const q = new URLSearchParams({ split: state.split, offset: state.offset, limit: state.limit });
  if (job) q.set("job", job);
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

async function loadPage() {
  $("dataset-error").hidden = true;
  try {
    const data = await api(`/api/datasets/${state.split}/images${query({ offset: state.offset, limit: state.limit })}`);
    state.total = data.total;
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

function init() {
  $("split").value = state.split;
  $("page-size").value = String(state.limit);
  if (job) $("dataset-summary").textContent = `The images of job ${job}'s data config, with their ground-truth boxes.`;
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
