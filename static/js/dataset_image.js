// One dataset image: a zoomable Plotly figure from /api/datasets/{split}/images/{index}.
import { ROOT, api, el } from "./api.js";

const root = document.getElementById("image-root");
const split = root.dataset.split;
const index = Number(root.dataset.index);
const job = new URLSearchParams(location.search).get("job");
const q = job ? `?job=${encodeURIComponent(job)}` : "";

async function init() {
  try {
    const data = await api(`/api/datasets/${split}/images/${index}${q}`);
    Plotly.newPlot("image-figure", data.figure.data, data.figure.layout, { displaylogo: false, responsive: true, scrollZoom: true });
    document.getElementById("image-summary").textContent =
      `${data.image_size}×${data.image_size} px · ${data.boxes.length} digits · image ${index + 1} of ${data.total}`;
    const body = document.querySelector("#boxes-table tbody");
    body.replaceChildren(
      ...data.boxes.map((b, i) =>
        el("tr", {}, el("td", { text: i }), el("td", { text: b.label }), el("td", { class: "mono", text: b.box.join(", ") }), el("td", { class: "mono", text: `${b.width}×${b.height}` })),
      ),
    );
    const prev = document.getElementById("prev-image");
    const next = document.getElementById("next-image");
    if (index > 0) prev.href = `${ROOT}/dataset/${split}/${index - 1}${q}`;
    else prev.classList.add("disabled");
    if (index + 1 < data.total) next.href = `${ROOT}/dataset/${split}/${index + 1}${q}`;
    else next.classList.add("disabled");
    const pq = new URLSearchParams({ split, index });
    if (job) pq.set("job", job);
    document.getElementById("priors-image").href = `${ROOT}/priors?${pq}`;
    document.getElementById("back-link").href = `${ROOT}/dataset?${new URLSearchParams({ split, offset: Math.floor(index / 24) * 24, ...(job ? { job } : {}) })}`;
    root.dataset.ready = "true";
  } catch (err) {
    const box = document.getElementById("image-error");
    box.textContent = err.message;
    box.hidden = false;
  }
}

init();
