// jobs.html, the runs table: filters, sort and page live in the URL (so a view can be shared and
// reloaded); the page polls GET /api/jobs every 2 s and redraws only the rows that changed, so a
// ticked checkbox or a focused control survives the refresh. Ticking 2 to 10 runs enables
// Compare, which opens /compare?jobs=ID1,ID2,...
import { ROOT, authFetch } from "../lib/api.js";
import { $, el } from "../lib/dom.js";
import { messageRow, runRow } from "../lib/runs_table.js";

const POLL_MS = 2000;
const MAX_COMPARE = 10;
const FILTERS = ["status", "q", "tag", "dataset", "sweep"];
const DEFAULT_SORT = "-created_at";

const body = $("jobs-body");
const errorBox = $("list-error");
const form = $("filters");
const pageSize = $("page-size");
const compareLink = $("compare-link");
const selectionNote = $("selection-note");
const clearSelection = $("clear-selection");

// ------------------------------------------------------------------ state <-> URL
const state = { sort: DEFAULT_SORT, offset: 0, limit: 50, total: 0 };
const selected = new Map(); // id -> name, in the order ticked (the compare page's order)

function readUrl() {
  const params = new URLSearchParams(location.search);
  for (const key of FILTERS) form.elements[key].value = params.get(key) || "";
  state.sort = params.get("sort") || DEFAULT_SORT;
  state.offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  const limit = params.get("limit");
  if (limit && [...pageSize.options].some((o) => o.value === limit)) pageSize.value = limit;
  state.limit = parseInt(pageSize.value, 10);
}

function query() {
  const params = new URLSearchParams();
  for (const key of FILTERS) {
    const value = form.elements[key].value.trim();
    if (value) params.set(key, value);
  }
  if (state.sort !== DEFAULT_SORT) params.set("sort", state.sort);
  if (state.offset) params.set("offset", String(state.offset));
  if (state.limit !== 50) params.set("limit", String(state.limit));
  return params;
}

function writeUrl() {
  const params = query();
  const url = `${location.pathname}${params.size ? `?${params}` : ""}`;
  history.replaceState(null, "", url);
}

// ------------------------------------------------------------------ sorting
const headers = [...document.querySelectorAll("#jobs-table th[data-sort]")];

function drawSortHeaders() {
  const key = state.sort.replace(/^-/, "");
  const descending = state.sort.startsWith("-");
  for (const th of headers) {
    const active = th.dataset.sort === key;
    th.setAttribute("aria-sort", active ? (descending ? "descending" : "ascending") : "none");
    th.querySelector(".sort-mark").textContent = active ? (descending ? "▼" : "▲") : "";
  }
}

for (const th of headers) {
  // A button inside the header: keyboard users sort with Enter/Space, screen readers hear aria-sort.
  const label = [...th.childNodes];
  const button = el("button", { type: "button", class: "sort", title: "Sort by this column" }, ...label, el("span", { class: "sort-mark", "aria-hidden": "true" }));
  th.replaceChildren(button);
  button.addEventListener("click", () => {
    const key = th.dataset.sort;
    const current = state.sort.replace(/^-/, "");
    if (current === key) state.sort = state.sort.startsWith("-") ? key : `-${key}`;
    else state.sort = th.dataset.first === "desc" ? `-${key}` : key; // best first for scores and sizes
    state.offset = 0;
    changed();
  });
}

// ------------------------------------------------------------------ selection and compare
function drawSelection() {
  const ids = [...selected.keys()];
  const ok = ids.length >= 2 && ids.length <= MAX_COMPARE;
  compareLink.textContent = ids.length ? `Compare ${ids.length}` : "Compare";
  if (ok) {
    compareLink.href = `${ROOT}/compare?jobs=${ids.map(encodeURIComponent).join(",")}`;
    compareLink.removeAttribute("aria-disabled");
    compareLink.classList.add("primary");
  } else {
    compareLink.removeAttribute("href");
    compareLink.setAttribute("aria-disabled", "true");
    compareLink.classList.remove("primary");
  }
  selectionNote.textContent = !ids.length
    ? "Select 2 to 10 runs to compare them."
    : ids.length === 1
      ? "1 run selected: select at least one more."
      : `${ids.length} runs selected${ids.length === MAX_COMPARE ? " (the most a comparison takes)" : ""}.`;
  clearSelection.hidden = !ids.length;
  const full = ids.length >= MAX_COMPARE;
  for (const box of body.querySelectorAll("input.select-run")) {
    const row = box.closest("tr");
    box.disabled = full && !box.checked;
    row.classList.toggle("selected", box.checked);
  }
}

function onSelect(id, checked) {
  const row = body.querySelector(`tr[data-job-id="${CSS.escape(id)}"]`);
  const name = row ? row.querySelector(".job-name a").textContent : id;
  if (checked && selected.size < MAX_COMPARE) selected.set(id, name);
  else selected.delete(id);
  drawSelection();
}

clearSelection.addEventListener("click", () => {
  selected.clear();
  for (const box of body.querySelectorAll("input.select-run")) box.checked = false;
  drawSelection();
});

// ------------------------------------------------------------------ filters and paging
function onFilter(key, value) {
  form.elements[key].value = value;
  state.offset = 0;
  changed();
}

let typing = null;
form.addEventListener("input", (event) => {
  clearTimeout(typing);
  state.offset = 0;
  // Text filters wait for a pause in typing; the status menu applies at once.
  typing = setTimeout(changed, event.target.tagName === "SELECT" ? 0 : 250);
});
form.addEventListener("submit", (event) => {
  event.preventDefault();
  changed();
});
form.addEventListener("reset", () => {
  setTimeout(() => {
    state.offset = 0;
    changed();
  });
});
pageSize.addEventListener("change", () => {
  state.limit = parseInt(pageSize.value, 10);
  state.offset = 0;
  changed();
});
$("prev-page").addEventListener("click", () => {
  state.offset = Math.max(0, state.offset - state.limit);
  changed();
});
$("next-page").addEventListener("click", () => {
  state.offset += state.limit;
  changed();
});

function drawPager(count) {
  const first = count ? state.offset + 1 : 0;
  $("page-range").textContent = state.total
    ? `${first.toLocaleString()}–${(state.offset + count).toLocaleString()} of ${state.total.toLocaleString()} jobs`
    : "No jobs";
  $("prev-page").disabled = state.offset === 0;
  $("next-page").disabled = state.offset + count >= state.total;
}

// ------------------------------------------------------------------ rows
const rows = new Map(); // id -> { key, tr }: a row is rebuilt only when its job changed

function draw(jobs) {
  const full = selected.size >= MAX_COMPARE;
  const next = new Map();
  const trs = jobs.map((job) => {
    const key = JSON.stringify(job) + selected.has(job.id);
    const old = rows.get(job.id);
    const tr = old && old.key === key ? old.tr : runRow(job, { selected: selected.has(job.id), full, onSelect, onFilter });
    next.set(job.id, { key, tr });
    return tr;
  });
  const same = trs.length === body.children.length && trs.every((tr, i) => body.children[i] === tr);
  if (!same) {
    const order = [...rows.keys()].join() === jobs.map((j) => j.id).join();
    if (order) {
      // Same rows in the same order: swap only those that changed (focus stays where it is).
      trs.forEach((tr, i) => body.children[i] !== tr && body.children[i].replaceWith(tr));
    } else {
      body.replaceChildren(...trs);
    }
  }
  rows.clear();
  for (const [id, row] of next) rows.set(id, row);
  // Remember the tags and datasets seen, as suggestions for the filter fields.
  fillList("known-tags", jobs.flatMap((j) => j.tags || []));
  fillList("known-datasets", jobs.map((j) => j.config && j.config.data && j.config.data.dataset).filter(Boolean));
  drawSelection();
}

const seen = { "known-tags": new Set(), "known-datasets": new Set(["mnist"]) };
function fillList(id, values) {
  const known = seen[id];
  const fresh = values.filter((v) => !known.has(v));
  if (!fresh.length) return;
  for (const v of fresh) known.add(v);
  $(id).replaceChildren(...[...known].sort().map((v) => el("option", { value: v })));
}

function drawEmpty() {
  rows.clear();
  const filtered = FILTERS.some((key) => form.elements[key].value.trim());
  if (filtered) {
    body.replaceChildren(messageRow("No jobs match these filters. ", el("button", { type: "button", class: "link-like", text: "Clear the filters.", onclick: () => form.reset() })));
  } else if (state.offset) {
    body.replaceChildren(messageRow("No jobs on this page."));
  } else {
    body.replaceChildren(messageRow("No jobs yet. ", el("a", { href: `${ROOT}/jobs/new`, text: "Start one." })));
  }
}

// ------------------------------------------------------------------ loading
let timer = null;
let generation = 0; // answers to an older query are dropped

async function refresh() {
  const mine = ++generation;
  const params = query();
  params.set("limit", String(state.limit));
  try {
    const response = await authFetch(`${ROOT}/api/jobs?${params}`, { headers: { Accept: "application/json" } });
    const data = await response.json();
    if (mine !== generation) return;
    if (!response.ok) throw new Error(Array.isArray(data.detail) ? data.detail.map((d) => `${d.loc.at(-1)}: ${d.msg}`).join("; ") : data.detail || `HTTP ${response.status}`);
    state.total = parseInt(response.headers.get("X-Total-Count") || String(data.length), 10);
    if (!data.length && state.offset && state.total) {
      state.offset = Math.max(0, Math.floor((state.total - 1) / state.limit) * state.limit); // past the end: the last page
      writeUrl();
      return refresh();
    }
    if (data.length) draw(data);
    else drawEmpty();
    drawPager(data.length);
    errorBox.hidden = true;
  } catch (err) {
    if (mine !== generation) return;
    errorBox.textContent = `Could not load the jobs: ${err.message}`;
    errorBox.hidden = false;
  }
}

function changed() {
  writeUrl();
  drawSortHeaders();
  refresh();
}

let polling = false;
async function poll() {
  if (polling) return; // a slow answer: skip a beat rather than pile requests up
  polling = true;
  try {
    await refresh();
  } finally {
    polling = false;
  }
}

function schedule() {
  clearInterval(timer);
  timer = document.hidden ? null : setInterval(poll, POLL_MS);
}

// No polling while the tab is hidden; catch up at once when it shows again.
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refresh();
  schedule();
});

readUrl();
drawSortHeaders();
drawSelection();
refresh();
schedule();
