// What the pages know about a dataset record (GET /api/datasets): links, counts, import stages.
import { ROOT, api } from "./api.js";
import { el } from "./dom.js";

/** The dataset's page (its report). */
export function datasetHref(id) {
  return `${ROOT}/datasets/${encodeURIComponent(id)}`;
}

/** One problem of a dataset's report over its image. */
export function problemHref(id, index) {
  return `${datasetHref(id)}/problems/${index}`;
}

/** The dataset browser on a dataset (mnist: the plain browser). */
export function browseHref(id, split = "val") {
  const q = new URLSearchParams({ split });
  if (id && id !== "mnist") q.set("dataset", id);
  return `${ROOT}/dataset?${q}`;
}

/** The prior explorer (and its coverage report) on a dataset. */
export function priorsHref(id) {
  return id && id !== "mnist" ? `${ROOT}/priors?${new URLSearchParams({ dataset: id })}` : `${ROOT}/priors`;
}

/** 1234 -> "1,234"; null -> "–". */
export function fmtCount(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
}

const FORMATS = { coco: "COCO", voc: "Pascal VOC", yolo: "YOLO", generator: "generator", auto: "auto-detect" };

/** The format as people write it. */
export function formatName(format) {
  return FORMATS[format] || format || "–";
}

const STAGES = {
  queued: "waiting for the import before it",
  read: "reading the annotations",
  check: "decoding the images",
  copy: "copying the images",
  write: "writing the index",
  done: "done",
};

/** "decoding the images: 120 of 400" from the registry's progress {done, total, stage}. */
export function importStage(progress) {
  const words = STAGES[progress.stage] || progress.stage;
  return progress.total > 1 ? `${words}: ${progress.done} of ${progress.total}` : words;
}

/** Fill a <select> with the ready datasets (the built-in one marked) and select `wanted` (an id
 *  or a name; default: the select's value when the list arrives, so a page that chose its
 *  dataset while the request was in flight keeps it). A failed request leaves the select as it
 *  is (it starts with mnist, so the page still works). */
export async function fillDatasetSelect(select, wanted = undefined) {
  try {
    const ready = (await api("/api/datasets")).filter((d) => d.status === "ready");
    wanted = wanted ?? select.value;
    select.replaceChildren(...ready.map((d) => el("option", { value: d.id, text: d.builtin ? `${d.name} (built in)` : d.name })));
    const chosen = ready.find((d) => d.id === wanted) || ready.find((d) => d.name === wanted);
    select.value = chosen ? chosen.id : "mnist";
  } catch {
    /* keep what is there */
  }
}
