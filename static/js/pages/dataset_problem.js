// dataset_problem.html, one problem of a dataset's validation report over its image, at the
// image's own size (GET /api/datasets/{id}/problems/{index}): the boxes kept and the box that
// was dropped or clipped, in pixel corners.
import { api } from "../lib/api.js";
import { $, el, showMessage } from "../lib/dom.js";
import { ZOOMABLE, drawFigure } from "../lib/plots.js";
import { datasetHref, problemHref } from "../lib/datasets.js";

const root = $("problem-root");
const datasetId = root.dataset.datasetId;
const index = Number(root.dataset.index);

function fact(label, value, mono = false) {
  return el("tr", {}, el("th", { scope: "row", text: label }), el("td", { class: mono ? "mono wrap" : "wrap", text: value }));
}

/** A link with nowhere to go: greyed out, and announced as unavailable. */
function disable(link) {
  link.classList.add("disabled");
  link.setAttribute("aria-disabled", "true");
}

function boxText(box) {
  return box ? `[${box.map((v) => (typeof v === "number" ? Number(v.toFixed(4)) : JSON.stringify(v))).join(", ")}]` : "–";
}

async function init() {
  try {
    const data = await api(`/api/datasets/${encodeURIComponent(datasetId)}/problems/${index}`);
    const p = data.problem;
    const id = data.dataset.id;
    $("dataset-link").textContent = data.dataset.name;
    $("dataset-link").href = datasetHref(id);
    document.title = `Problem ${index} · ${data.dataset.name} · ssdboard`;
    $("problem-summary").textContent = `${p.reason}: ${data.description}`;
    const facts = [
      fact("reason", p.reason, true),
      fact("what happened", data.description),
      fact("file at fault", p.file, true),
      fact("image", p.image || "–", true),
      fact("box as written", boxText(p.box), true),
      fact("box (pixel x1, y1, x2, y2)", boxText(data.box_xyxy), true),
    ];
    if (p.detail) facts.push(fact("detail", p.detail));
    if (data.image) facts.push(fact("image size", `${data.image.width}×${data.image.height} px · ${data.image.split}`));
    document.querySelector("#problem-facts tbody").replaceChildren(...facts);
    const prev = $("prev-problem");
    const next = $("next-problem");
    if (index > 0) prev.href = problemHref(id, index - 1);
    else disable(prev);
    if (index + 1 < data.total) next.href = problemHref(id, index + 1);
    else disable(next);
    if (data.figure) {
      const { width, height } = data.image;
      $("problem-figure").style.aspectRatio = `${Math.max(0.5, Math.min(2, width / height))}`;
      await drawFigure("problem-figure", data.figure, ZOOMABLE);
      document.querySelector("#kept-table tbody").replaceChildren(
        ...data.image.boxes.map((b, i) => el("tr", {}, el("td", { text: i }), el("td", { text: b.name }), el("td", { class: "mono", text: b.box.join(", ") }))),
      );
      if (!p.drawable && p.box) $("figure-note").textContent = "The problem's box has no four numbers to draw; the image is shown with the boxes kept.";
    } else {
      $("problem-figure").hidden = true;
      $("figure-note").textContent = `The image ${p.image || ""} was dropped (${p.reason}): there is nothing to show.`;
      document.querySelector("#kept-table tbody").replaceChildren(el("tr", {}, el("td", { colspan: 3, class: "muted", text: "none: the image was dropped" })));
    }
    root.dataset.ready = "true";
  } catch (err) {
    showMessage($("problem-error"), err.message);
    if (err.status === 404) disable($("next-problem"));
  }
}

init();
