// dataset_report.html, one dataset: its counts and classes, and the validation report of its
// import (GET /api/datasets/{id}): counts per reason with what each means, and every problem
// with the file at fault, linking to the problem over its image. While the import runs, its
// progress (polled every 0.5 s); after a failure, the error.
import { ROOT, api } from "../lib/api.js";
import { $, el, showMessage } from "../lib/dom.js";
import { fmtTime } from "../lib/format.js";
import { statusBadge } from "../lib/jobs.js";
import { browseHref, datasetHref, fmtCount, formatName, importStage, priorsHref, problemHref } from "../lib/datasets.js";

const PAGE = 50;
const POLL_MS = 500;
const root = $("report-root");
const requested = root.dataset.datasetId;
const state = { id: requested, reason: "", offset: 0, total: 0 };

function tile(value, label) {
  return el("div", { class: "tile" }, el("span", { class: "tile-value", text: value }), el("span", { class: "tile-label", text: label }));
}

function sum(group) {
  return Object.values(group || {}).reduce((a, b) => a + b, 0);
}

function showHead(d) {
  $("dataset-name").textContent = d.name;
  $("dataset-status").replaceChildren(statusBadge(d.status));
  document.title = `Dataset ${d.name} · ssdboard`;
}

function showImporting(d) {
  showHead(d);
  $("dataset-summary").textContent = `Uploaded ${d.source} (${fmtCount(d.bytes)} bytes); the import runs on the server.`;
  $("import-card").hidden = false;
  const p = d.progress || { done: 0, total: 1 };
  const pct = Math.round((p.total ? p.done / p.total : 0) * 100);
  $("import-fill").style.width = `${pct}%`;
  $("import-progress").setAttribute("aria-valuenow", String(pct));
  $("import-stage").textContent = importStage(p);
}

function showFailed(d) {
  showHead(d);
  $("import-card").hidden = true;
  $("dataset-summary").textContent = `The import of ${d.source} failed; nothing was registered.`;
  showMessage($("report-error"), d.error);
  $("delete-dataset").hidden = false;
  $("delete-dataset").textContent = "Forget this upload";
  root.dataset.ready = "true";
}

function showClasses(classes) {
  $("classes-card").hidden = false;
  $("classes-summary").textContent = `${classes.length} in class-index order`;
  $("class-list").replaceChildren(...classes.map((name) => el("li", { class: "mono", text: name })));
}

function showReport(report) {
  $("report-card").hidden = false;
  const droppedImages = sum(report.dropped.images);
  const droppedBoxes = sum(report.dropped.boxes);
  $("report-tiles").replaceChildren(
    tile(fmtCount(report.images), "images kept"),
    tile(fmtCount(report.boxes), "boxes kept"),
    tile(fmtCount(report.ignored_regions), "ignore regions"),
    tile(fmtCount(droppedImages), "images dropped"),
    tile(fmtCount(droppedBoxes), "boxes dropped"),
  );
  const found = report.reasons.filter((r) => r.count > 0);
  const clean = report.reasons.filter((r) => r.count === 0);
  $("reasons-body").replaceChildren(
    ...(found.length
      ? found.map((r) =>
          el(
            "tr",
            { dataset: { reason: r.reason } },
            el("td", {}, el("span", { class: `reason reason-${r.kind}`, text: r.reason })),
            el("td", { class: "num strong", text: fmtCount(r.count) }),
            el("td", { class: "wrap", text: r.description }),
          ),
        )
      : [el("tr", { class: "placeholder" }, el("td", { colspan: 3, text: "Every image and box passed every check." }))]),
  );
  $("clean-list").replaceChildren(...clean.map((r) => el("li", {}, el("code", { text: r.reason }), ` — ${r.description}`)));
  $("clean-reasons").hidden = clean.length === 0;
  const select = $("problem-reason");
  select.replaceChildren(el("option", { value: "", text: "all" }), ...found.map((r) => el("option", { value: r.reason, text: `${r.reason} (${r.count})` })));
}

function boxText(box) {
  return box ? `[${box.map((v) => (typeof v === "number" ? Number(v.toFixed(4)) : JSON.stringify(v))).join(", ")}]` : "–";
}

function problemRow(p) {
  const number = p.viewable
    ? el("a", { href: problemHref(state.id, p.index), text: `#${p.index}`, title: "Show it over its image" })
    : el("span", { text: `#${p.index}`, title: "The image was dropped: there is nothing to show" });
  return el(
    "tr",
    { dataset: { index: p.index, reason: p.reason } },
    el("td", { class: "num" }, number),
    el("td", {}, el("span", { class: `reason reason-${p.kind}`, text: p.reason })),
    el("td", { class: "mono wrap", text: p.file }),
    el("td", { class: "mono wrap" }, p.image ? (p.viewable ? el("a", { href: problemHref(state.id, p.index), text: p.image }) : `${p.image} (dropped)`) : "–"),
    el("td", { class: "mono", text: boxText(p.box) }),
    el("td", { class: "wrap muted", text: p.detail || "" }),
  );
}

function showProblems(page) {
  state.total = page.total;
  $("problems-card").hidden = false;
  const body = $("problems-body");
  body.replaceChildren(
    ...(page.items.length ? page.items.map(problemRow) : [el("tr", { class: "placeholder" }, el("td", { colspan: 6, text: "No problems: nothing was dropped or noted." }))]),
  );
  const last = Math.min(state.offset + PAGE, page.total);
  $("problems-range").textContent = page.total ? `${state.offset + 1}–${last} of ${fmtCount(page.total)}` : "none";
  $("problems-prev").disabled = state.offset === 0;
  $("problems-next").disabled = last >= page.total;
  body.dataset.ready = "true";
}

async function loadProblems() {
  const q = new URLSearchParams({ offset: state.offset, limit: PAGE });
  if (state.reason) q.set("reason", state.reason);
  try {
    showProblems(await api(`/api/datasets/${encodeURIComponent(state.id)}/problems?${q}`));
  } catch (err) {
    showMessage($("report-error"), `Could not load the problems: ${err.message}`);
  }
}

function showReady(d) {
  showHead(d);
  $("import-card").hidden = true;
  state.id = d.id;
  // An upload's id leads to the registered dataset, whose id differs: show the lasting URL.
  if (d.id !== requested) history.replaceState(null, "", datasetHref(d.id));
  $("browse-link").href = browseHref(d.id);
  $("browse-link").hidden = false;
  $("priors-link").href = priorsHref(d.id);
  $("priors-link").hidden = false;
  $("train-link").href = `${ROOT}/jobs/new?dataset=${encodeURIComponent(d.id)}`;
  $("train-link").hidden = false;
  showClasses(d.classes);
  if (d.builtin) {
    $("dataset-summary").textContent =
      "The built-in MNIST-detection generator: images are drawn on the fly from real MNIST digits, so there is nothing to import or validate.";
    root.dataset.ready = "true";
    return;
  }
  const s = d.splits || {};
  $("dataset-summary").textContent =
    `${formatName(d.format)} · ${fmtCount(d.counts.images)} images · ${fmtCount(d.counts.boxes)} boxes · ` +
    `${d.classes.length} classes · imported ${fmtTime(d.created)} from ${d.source} · id ${d.id}`;
  $("split-summary").textContent = `train ${fmtCount(s.train)} · val ${fmtCount(s.val)} (split: ${d.split_from || "–"})`;
  $("delete-dataset").hidden = false;
  showReport(d.report);
  state.total = d.report.problems_total;
  showProblems({ total: d.report.problems_total, items: d.report.problems.slice(0, PAGE) });
  root.dataset.ready = "true";
}

async function load() {
  try {
    const d = await api(`/api/datasets/${encodeURIComponent(state.id)}`);
    if (d.status === "importing") {
      showImporting(d);
      setTimeout(load, POLL_MS);
    } else if (d.status === "failed") {
      showFailed(d);
    } else {
      showReady(d);
    }
  } catch (err) {
    showMessage($("report-error"), err.message);
    $("dataset-summary").textContent = "";
  }
}

async function remove() {
  const name = $("dataset-name").textContent;
  if (!window.confirm(`Delete the dataset ${name} and its files? Jobs that trained on it keep their checkpoints.`)) return;
  try {
    await api(`/api/datasets/${encodeURIComponent(state.id)}`, { method: "DELETE" });
    location.href = `${ROOT}/datasets`;
  } catch (err) {
    showMessage($("report-error"), err.message);
  }
}

$("delete-dataset").addEventListener("click", remove);
$("problem-reason").addEventListener("change", () => {
  state.reason = $("problem-reason").value;
  state.offset = 0;
  loadProblems();
});
$("problems-prev").addEventListener("click", () => {
  state.offset = Math.max(0, state.offset - PAGE);
  loadProblems();
});
$("problems-next").addEventListener("click", () => {
  state.offset += PAGE;
  loadProblems();
});
load();
