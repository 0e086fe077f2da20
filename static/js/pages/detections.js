// detections.html, the detections viewer: a page of validation images with ground truth and detections, a score
// slider and class toggles that act here without a round trip, the evaluation panel, an upload.
//
// The server sends each image's figure with every box as a named shape ("gt:j", "det:i"), and
// the IoU matrix of detections against ground truth; a change of score or classes re-runs the
// matching (lib/match.js) and restyles the shapes and hover points with Plotly.react.

import { ApiError, ROOT, api } from "../lib/api.js";
import { $, el, showMessage as showError } from "../lib/dom.js";
import { fmtFixed as fmt } from "../lib/format.js";
import { statusBadge } from "../lib/jobs.js";
import { matchDetections } from "../lib/match.js";
import { drawFigure } from "../lib/plots.js";

const root = $("det-root");
const jobId = root.dataset.jobId;
const LIMIT = 12;
const RETRY_MS = 10_000;

const state = { offset: 0, total: null, score: 0.5, hidden: new Set(), images: [], revision: 0, retry: null };

// ---------------------------------------------------------------- job header

async function loadJob() {
  try {
    const job = await api(`/api/jobs/${jobId}`);
    $("det-job-name").textContent = job.name || `Job ${jobId}`;
    $("det-job-status").replaceWith(Object.assign(statusBadge(job.status), { id: "det-job-status" }));
    document.title = `Detections · ${job.name || jobId} · ssdboard`;
  } catch (err) {
    showError($("det-error"), err.message);
  }
}

// ---------------------------------------------------------------- the image grid

/** Class names of the job's dataset, index order (the digits for the built-in generator). */
let classNames = [];
const className = (k) => classNames[k] ?? String(k);

function classToggles(numClasses) {
  const box = $("det-classes");
  if (box.childElementCount) return;
  for (let k = 0; k < numClasses; k++) {
    const input = el("input", { type: "checkbox", value: String(k), checked: true, "data-class": String(k) });
    input.addEventListener("change", () => {
      if (input.checked) state.hidden.delete(k);
      else state.hidden.add(k);
      applyAll();
    });
    box.append(el("label", { class: "class-toggle" }, input, className(k)));
  }
  const all = el("button", { type: "button", class: "button small", text: "all" });
  all.addEventListener("click", () => setClasses(true));
  const none = el("button", { type: "button", class: "button small", text: "none" });
  none.addEventListener("click", () => setClasses(false));
  box.append(all, none);
}

function setClasses(on) {
  for (const input of $("det-classes").querySelectorAll("input[data-class]")) {
    input.checked = on;
    const k = Number(input.value);
    if (on) state.hidden.delete(k);
    else state.hidden.add(k);
  }
  applyAll();
}

async function loadDetections() {
  clearTimeout(state.retry);
  showError($("det-error"), "");
  const query = `split=val&offset=${state.offset}&limit=${LIMIT}&score=${state.score}`;
  let data;
  try {
    data = await api(`/api/jobs/${jobId}/detections?${query}`);
  } catch (err) {
    const waiting = err instanceof ApiError && err.status === 409;
    showError($("det-error"), waiting ? `${err.message} (retrying every ${RETRY_MS / 1000} s)` : err.message);
    $("det-grid").replaceChildren(el("p", { class: "muted", text: waiting ? "Waiting for a checkpoint…" : "No detections." }));
    if (waiting) state.retry = setTimeout(start, RETRY_MS);
    root.dataset.ready = "true";
    return false;
  }
  state.total = data.total;
  const step = data.checkpoint.step === null ? "" : ` at step ${data.checkpoint.step}`;
  const saved = new Date(data.checkpoint.saved_at).toLocaleString();
  $("det-checkpoint").textContent =
    `Checkpoint${step} (saved ${saved}); detections scoring above ${data.score_threshold}, matched at IoU ${data.iou_threshold}.`;
  const last = state.offset + data.images.length - 1;
  $("det-range").textContent = data.images.length ? `images ${state.offset}–${last} of ${data.total ?? "∞"}` : "";
  $("det-prev").disabled = state.offset === 0;
  $("det-next").disabled = data.total !== null && state.offset + LIMIT >= data.total;
  classNames = data.class_names ?? [];
  classToggles(data.num_classes);
  await renderGrid(data);
  applyAll();
  $("eval-n").max = String(data.total ?? 5000);
  if (data.total !== null && Number($("eval-n").value) > data.total) $("eval-n").value = String(data.total);
  root.dataset.ready = "true";
  return true;
}

async function renderGrid(data) {
  const grid = $("det-grid");
  for (const item of state.images) Plotly.purge(item.div);
  grid.replaceChildren();
  state.images = data.images.map((image) => {
    const div = el("div", { class: "det-plot", "data-index": String(image.index) });
    const caption = el("div", { class: "det-caption" });
    grid.append(el("figure", { class: "det-cell" }, div, caption));
    return { ...image, div, caption };
  });
  // Twelve small fixed-size plots: no resize listener each.
  await Promise.all(state.images.map((item) => drawFigure(item.div, item.figure, { responsive: false })));
}

function detectionText(d, status) {
  const iou = d.best_gt >= 0 ? ` · IoU ${fmt(d.iou, 2)} with GT ${d.best_gt}` : "";
  return `${className(d.label)} · score ${fmt(d.score, 2)}${iou}${status ? " · " + status.toUpperCase() : ""}`;
}

/** Restyle one image for the current score and classes; returns its counts. */
function applyImage(item) {
  const { colors, points_per_box: per } = item.figure.layout.meta;
  const { status, gtMatched } = matchDetections(item.detections, item.gt, item.iou, { score: state.score });
  const counts = { tp: 0, fp: 0, missed: 0, shown: 0 };
  const gtShown = item.gt.map((g) => !state.hidden.has(g.label));
  const detShown = item.detections.map((d, i) => status[i] !== null && !state.hidden.has(d.label));
  const shapes = item.figure.layout.shapes.map((shape) => {
    const [kind, index] = shape.name.split(":");
    const i = Number(index);
    if (kind === "gt") {
      const color = gtMatched[i] ? colors.gt : colors.missed;
      if (gtShown[i] && !gtMatched[i]) counts.missed += 1;
      return { ...shape, visible: gtShown[i], line: { ...shape.line, color } };
    }
    if (detShown[i]) {
      counts[status[i]] += 1;
      counts.shown += 1;
    }
    return { ...shape, visible: detShown[i], line: { ...shape.line, color: colors[status[i]] || colors.fp } };
  });
  const [gtTrace, detTrace] = item.figure.data;
  const pick = (values, shown) => values.map((v, k) => (shown[Math.floor(k / per)] ? v : null));
  const data = [
    { ...gtTrace, x: pick(gtTrace.x, gtShown), y: pick(gtTrace.y, gtShown),
      text: gtTrace.text.map((_, k) => {
        const g = item.gt[Math.floor(k / per)];
        return `GT ${className(g.label)} (${gtMatched[Math.floor(k / per)] ? "matched" : "missed"})`;
      }) },
    { ...detTrace, x: pick(detTrace.x, detShown), y: pick(detTrace.y, detShown),
      text: detTrace.text.map((_, k) => detectionText(item.detections[Math.floor(k / per)], status[Math.floor(k / per)])) },
    ...item.figure.data.slice(2),
  ];
  state.revision += 1;
  Plotly.react(item.div, data, { ...item.figure.layout, shapes, datarevision: state.revision });
  item.div.dataset.visibleBoxes = String(counts.shown);
  item.caption.replaceChildren(
    el("span", { class: "mono", text: `#${item.index}` }),
    el("span", { class: "count tp", text: `TP ${counts.tp}` }),
    el("span", { class: "count fp", text: `FP ${counts.fp}` }),
    el("span", { class: "count missed", text: `missed ${counts.missed}` }),
  );
  return counts;
}

function applyAll() {
  const total = { tp: 0, fp: 0, missed: 0, shown: 0 };
  for (const item of state.images) {
    const counts = applyImage(item);
    for (const key of Object.keys(total)) total[key] += counts[key];
  }
  const grid = $("det-grid");
  grid.dataset.visibleDetections = String(total.shown);
  grid.dataset.tp = String(total.tp);
  grid.dataset.fp = String(total.fp);
  grid.dataset.missed = String(total.missed);
  const gts = total.tp + total.missed;
  const precision = total.shown ? total.tp / total.shown : null;
  const recall = gts ? total.tp / gts : null;
  $("det-summary").textContent = state.images.length
    ? `On these ${state.images.length} images at score ≥ ${state.score.toFixed(2)}: ${total.shown} detections, ` +
      `${total.tp} true positives, ${total.fp} false positives, ${total.missed} missed ` +
      `(precision ${fmt(precision, 2)}, recall ${fmt(recall, 2)}).`
    : "";
}

// ---------------------------------------------------------------- evaluation

async function loadEvaluation(event) {
  if (event) event.preventDefault();
  const n = Number($("eval-n").value) || 100;
  const score = Number($("eval-score").value);
  $("eval-run").disabled = true;
  $("eval-status").textContent = `Evaluating on ${n} validation images…`;
  try {
    const data = await api(`/api/jobs/${jobId}/evaluation?n=${n}&score=${score}`);
    renderEvaluation(data);
  } catch (err) {
    $("eval-status").textContent = `Evaluation failed: ${err.message}`;
  } finally {
    $("eval-run").disabled = false;
  }
}

function renderEvaluation(data) {
  const tile = (label, value) => el("div", { class: "tile" }, el("span", { class: "tile-value", text: value }), el("span", { class: "tile-label", text: label }));
  $("eval-tiles").replaceChildren(
    tile("mAP@.5", fmt(data.map50)),
    tile("mAP@[.5:.95]", fmt(data.map)),
    tile("mAP@.75", fmt(data.map75)),
    tile("AR@100", fmt(data.mar100)),
    tile("images", String(data.num_images)),
    tile("detections", String(data.num_detections)),
  );
  $("eval-tiles").hidden = false;
  const head = el("thead", {}, el("tr", {}, el("th", { text: "class" }), el("th", { class: "num", text: "GT boxes" }),
    el("th", { class: "num", text: "AP@.5" }), el("th", { class: "num", text: "AP@[.5:.95]" })));
  const rows = data.classes.map((c) => el("tr", {}, el("td", { class: "strong", text: c.name ?? String(c.class) }),
    el("td", { class: "num", text: String(c.num_gt) }), el("td", { class: "num", text: fmt(c.ap50) }),
    el("td", { class: "num", text: fmt(c.ap) })));
  $("ap-table").replaceChildren(head, el("tbody", {}, rows));
  $("eval-body").hidden = false;
  drawFigure($("pr-chart"), data.pr_figure);
  drawFigure($("confusion-chart"), data.confusion_figure);
  $("eval-status").textContent =
    `Validation images 0–${data.n - 1}; confusion matrix at IoU ${data.iou_threshold} and score ≥ ${data.score}: ` +
    `rows are true classes (last: background = false positives), columns predicted classes (last: missed). ` +
    `Computed in ${data.seconds} s.`;
  $("eval-card").dataset.ready = "true";
}

// ---------------------------------------------------------------- analysis

async function loadAnalysis(event) {
  if (event) event.preventDefault();
  const n = Number($("analysis-n").value) || 200;
  $("analysis-run").disabled = true;
  $("analysis-status").textContent = `Analyzing ${n} validation images in a process of its own…`;
  try {
    renderAnalysis(await api(`/api/jobs/${jobId}/analysis?n=${n}`));
  } catch (err) {
    $("analysis-status").textContent = `Analysis failed: ${err.message}`;
  } finally {
    $("analysis-run").disabled = false;
  }
}

function renderAnalysis(data) {
  const tile = (label, value) => el("div", { class: "tile" }, el("span", { class: "tile-value", text: value }), el("span", { class: "tile-label", text: label }));
  const causes = data.causes;
  const total = Object.values(causes).reduce((a, b) => a + b, 0);
  const share = (k) => (total ? `${causes[k]} (${((100 * causes[k]) / total).toFixed(1)}%)` : "0");
  $("analysis-tiles").replaceChildren(
    tile("AP@.5 (TIDE)", fmt(data.ap50, 1)),
    tile("objects", String(total)),
    tile("found", share("found")),
    tile("class wrong / box off", `${causes.cls} / ${causes.loc}`),
    tile("missed", share("missed")),
    tile("missed: no prior can match", share("no_prior")),
  );
  $("analysis-tiles").hidden = false;
  $("analysis-body").hidden = false;
  drawFigure($("tide-chart"), data.figures.tide);
  drawFigure($("size-chart"), data.figures.sizes);
  drawFigure($("prior-recall-chart"), data.figures.prior_recall);
  $("analysis-status").textContent =
    `${data.images} ${data.split} images of ${data.dataset_name}` +
    (data.checkpoint.step == null ? ". " : `, the checkpoint of step ${data.checkpoint.step}. `) +
    "dAP: the AP@.5 points gained if only that kind of error were fixed (TIDE). " +
    "An object whose priors could never match it (no positive prior under the run's matching rule) was never " +
    "asked of the network: fix the priors or the input size, not the training.";
  analysis = data;
  fillGalleryFilters();
  renderGallery();
  $("analysis-card").dataset.ready = "true";
}

// ---------------------------------------------------------------- gallery

let analysis = null;
const GALLERY_SIZE = 48; // tiles shown; the filters narrow them
const TILE_PX = 112;
const SIZE_BUCKETS = ["< 16 px", "16-24 px", "24-32 px", "32-48 px", ">= 48 px"]; // ssd.coverage.BUCKET_LABELS
const ERROR_TYPES = { fp: ["cls", "loc", "both", "dupe", "bkg"], miss: ["missed", "no_prior", "cls", "loc"] };
const TYPE_NAMES = {
  cls: "class wrong (cls)", loc: "box off (loc)", both: "both", dupe: "duplicate", bkg: "background",
  missed: "missed", no_prior: "no prior can match",
};

function options(select, entries) {
  const keep = select.value;
  select.replaceChildren(el("option", { value: "", text: "all" }), ...entries.map(([value, text]) => el("option", { value, text })));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

function fillGalleryFilters() {
  const kind = $("gallery-kind").value;
  options($("gallery-type"), ERROR_TYPES[kind].map((t) => [t, TYPE_NAMES[t]]));
  const classes = new Set([...analysis.ground_truths.map((g) => g.class), ...analysis.false_positives.map((f) => f.class)]);
  options($("gallery-class"), [...classes].sort((a, b) => a - b).map((k) => [String(k), className(k)]));
  options($("gallery-size"), SIZE_BUCKETS.map((b) => [b, b]));
}

/** The items the filters keep, the worst first: false positives by score, misses by area. */
function galleryItems() {
  const kind = $("gallery-kind").value;
  const type = $("gallery-type").value;
  const cls = $("gallery-class").value;
  const size = $("gallery-size").value;
  const items = kind === "fp"
    ? analysis.false_positives.map((f) => ({ ...f, why: f.type }))
    : analysis.ground_truths.filter((g) => g.cause !== "found").map((g) => ({ ...g, why: g.cause }))
      .sort((a, b) => b.box[2] * b.box[3] - a.box[2] * a.box[3]);
  return items.filter((it) => (!type || it.why === type) && (!cls || String(it.class) === cls) && (!size || it.size_bucket === size));
}

/** A crop around the box: the image (the dataset browser's PNG at the input size) moved and scaled in CSS. */
function tile(item) {
  const S = analysis.image_size;
  const [x, y, w, h] = item.box;
  const side = Math.min(S, Math.max(w, h) * 1.8 + 8);
  const left = Math.min(Math.max(x + w / 2 - side / 2, 0), S - side);
  const top = Math.min(Math.max(y + h / 2 - side / 2, 0), S - side);
  const k = TILE_PX / side;
  const url = `${ROOT}/api/datasets/${analysis.split}/images/${item.image}.png?job=${encodeURIComponent(jobId)}`;
  const crop = el("span", { class: "crop", role: "img", "aria-label": `image ${item.image}, ${TYPE_NAMES[item.why]}` });
  crop.style.backgroundImage = `url("${url}")`;
  crop.style.backgroundSize = `${S * k}px ${S * k}px`;
  crop.style.backgroundPosition = `${-left * k}px ${-top * k}px`;
  const box = el("span", { class: `crop-box why-${item.why}` });
  Object.assign(box.style, { left: `${(x - left) * k}px`, top: `${(y - top) * k}px`, width: `${w * k}px`, height: `${h * k}px` });
  crop.append(box);
  const detail = "score" in item ? `${className(item.class)} · ${fmt(item.score, 2)}` : `${className(item.class)} · ${Math.round(w)}×${Math.round(h)} px`;
  const page = Math.floor(item.image / LIMIT) * LIMIT;
  return el("figure", { class: "gallery-tile" },
    el("a", { href: `?offset=${page}`, target: "_blank", rel: "noopener", title: "open this image in the viewer (a new tab)" }, crop),
    el("figcaption", {}, el("span", { class: `why why-${item.why}`, text: TYPE_NAMES[item.why] }), el("span", { text: detail }),
      el("a", { href: `${ROOT}/priors?job=${encodeURIComponent(jobId)}&split=${analysis.split}&index=${item.image}`, text: `image ${item.image}: its priors` })));
}

function renderGallery() {
  const items = galleryItems();
  const fp = $("gallery-kind").value === "fp";
  const total = fp ? analysis.false_positives_total : analysis.ground_truths.filter((g) => g.cause !== "found").length;
  const listed = fp && total > analysis.false_positives.length ? ` (the ${analysis.false_positives.length} best-scored are listed)` : "";
  const what = fp ? "false positives" : "objects not found";
  $("gallery-count").textContent = `${items.length} of ${total} ${what}${listed} match the filters` +
    (items.length > GALLERY_SIZE ? `; the worst ${GALLERY_SIZE} are shown.` : ".");
  $("gallery").replaceChildren(...items.slice(0, GALLERY_SIZE).map(tile));
}

// ---------------------------------------------------------------- upload

async function upload(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) return;
  const body = new FormData();
  body.append("file", file);
  body.append("score", $("upload-score").value || "0.3");
  showError($("upload-error"), "");
  $("upload-run").disabled = true;
  try {
    const data = await api(`/api/jobs/${jobId}/detections/upload`, { method: "POST", body });
    const shown = data.detections.filter((d) => d.score >= data.score).length;
    $("upload-summary").textContent =
      `${file.name}: ${data.width}×${data.height} px, letterboxed to ${data.image_size}×${data.image_size}; ` +
      `${shown} of ${data.detections.length} detections scoring ≥ ${data.score} drawn.`;
    await drawFigure($("upload-chart"), data.figure);
    $("upload-card").dataset.ready = "true";
  } catch (err) {
    showError($("upload-error"), err.message);
    $("upload-summary").textContent = "";
  } finally {
    $("upload-run").disabled = false;
  }
}

// ---------------------------------------------------------------- wiring

$("det-score").addEventListener("input", (event) => {
  state.score = Number(event.target.value);
  $("det-score-value").textContent = state.score.toFixed(2);
  applyAll();
});
$("det-prev").addEventListener("click", () => {
  state.offset = Math.max(0, state.offset - LIMIT);
  loadDetections();
});
$("det-next").addEventListener("click", () => {
  state.offset += LIMIT;
  loadDetections();
});
$("det-refresh").addEventListener("click", start);
$("eval-form").addEventListener("submit", loadEvaluation);
$("analysis-form").addEventListener("submit", loadAnalysis);
$("gallery-kind").addEventListener("change", () => { fillGalleryFilters(); renderGallery(); });
for (const id of ["gallery-type", "gallery-class", "gallery-size"]) $(id).addEventListener("change", renderGallery);
// ?offset=N (a gallery tile's link): open the page of the viewer that holds image N.
const startOffset = Number(new URLSearchParams(location.search).get("offset"));
if (Number.isInteger(startOffset) && startOffset > 0) state.offset = startOffset - (startOffset % LIMIT);
$("upload-form").addEventListener("submit", upload);

/** Detections, then (once a checkpoint answered) the evaluation. */
async function start() {
  if (await loadDetections()) loadEvaluation();
}

loadJob();
start();
