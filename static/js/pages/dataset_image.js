// dataset_image.html, one dataset image: a zoomable Plotly figure from
// /api/datasets/{split}/images/{index} (of the generator, ?job=ID's dataset or ?dataset=ID).
import { ROOT, api } from "../lib/api.js";
import { $, el, showMessage } from "../lib/dom.js";
import { ZOOMABLE, drawFigure } from "../lib/plots.js";

const root = $("image-root");
const split = root.dataset.split;
const index = Number(root.dataset.index);
const params = new URLSearchParams(location.search);
const job = params.get("job");
const dataset = job ? null : params.get("dataset");
const which = job ? { job } : dataset ? { dataset } : {};
const q = Object.keys(which).length ? `?${new URLSearchParams(which)}` : "";

/** A link with nowhere to go: greyed out, and announced as unavailable. */
function disable(link) {
  link.classList.add("disabled");
  link.setAttribute("aria-disabled", "true");
}

async function init() {
  try {
    const data = await api(`/api/datasets/${split}/images/${index}${q}`);
    drawFigure("image-figure", data.figure, ZOOMABLE);
    const imported = data.dataset !== "mnist";
    $("image-summary").textContent = imported
      ? `${data.dataset_name}: ${data.file} (${data.width}×${data.height} px) at the network input, ${data.image_size}×${data.image_size} px · ` +
        `${data.boxes.length} objects${data.ignore.length ? ` and ${data.ignore.length} ignore regions` : ""} · image ${index + 1} of ${data.total}`
      : `${data.image_size}×${data.image_size} px · ${data.boxes.length} digits · image ${index + 1} of ${data.total}`;
    if (imported) $("class-header").textContent = "class";
    const body = document.querySelector("#boxes-table tbody");
    body.replaceChildren(
      ...data.boxes.map((b, i) =>
        el("tr", {}, el("td", { text: i }), el("td", { text: b.name ?? b.label }), el("td", { class: "mono", text: b.box.join(", ") }), el("td", { class: "mono", text: `${b.width}×${b.height}` })),
      ),
    );
    const prev = $("prev-image");
    const next = $("next-image");
    if (index > 0) prev.href = `${ROOT}/dataset/${split}/${index - 1}${q}`;
    else disable(prev);
    if (index + 1 < data.total) next.href = `${ROOT}/dataset/${split}/${index + 1}${q}`;
    else disable(next);
    const pq = new URLSearchParams({ split, index });
    if (job) pq.set("job", job);
    // The prior explorer follows a job's config; an imported dataset has no job to name there.
    if (imported && !job) $("priors-image").hidden = true;
    else $("priors-image").href = `${ROOT}/priors?${pq}`;
    $("back-link").href = `${ROOT}/dataset?${new URLSearchParams({ split, offset: Math.floor(index / 24) * 24, ...which })}`;
    root.dataset.ready = "true";
  } catch (err) {
    showMessage($("image-error"), err.message);
  }
}

init();
