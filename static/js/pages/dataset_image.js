// dataset_image.html, one dataset image: a zoomable Plotly figure from
// /api/datasets/{split}/images/{index}.
import { ROOT, api } from "../lib/api.js";
import { $, el, showMessage } from "../lib/dom.js";
import { ZOOMABLE, drawFigure } from "../lib/plots.js";

const root = $("image-root");
const split = root.dataset.split;
const index = Number(root.dataset.index);
const job = new URLSearchParams(location.search).get("job");
const q = job ? `?job=${encodeURIComponent(job)}` : "";

async function init() {
  try {
    const data = await api(`/api/datasets/${split}/images/${index}${q}`);
    drawFigure("image-figure", data.figure, ZOOMABLE);
    $("image-summary").textContent =
      `${data.image_size}×${data.image_size} px · ${data.boxes.length} digits · image ${index + 1} of ${data.total}`;
    const body = document.querySelector("#boxes-table tbody");
    body.replaceChildren(
      ...data.boxes.map((b, i) =>
        el("tr", {}, el("td", { text: i }), el("td", { text: b.label }), el("td", { class: "mono", text: b.box.join(", ") }), el("td", { class: "mono", text: `${b.width}×${b.height}` })),
      ),
    );
    const prev = $("prev-image");
    const next = $("next-image");
    if (index > 0) prev.href = `${ROOT}/dataset/${split}/${index - 1}${q}`;
    else prev.classList.add("disabled");
    if (index + 1 < data.total) next.href = `${ROOT}/dataset/${split}/${index + 1}${q}`;
    else next.classList.add("disabled");
    const pq = new URLSearchParams({ split, index });
    if (job) pq.set("job", job);
    $("priors-image").href = `${ROOT}/priors?${pq}`;
    $("back-link").href = `${ROOT}/dataset?${new URLSearchParams({ split, offset: Math.floor(index / 24) * 24, ...(job ? { job } : {}) })}`;
    root.dataset.ready = "true";
  } catch (err) {
    showMessage($("image-error"), err.message);
  }
}

init();
