// sweeps.html, the sweeps list: polls GET /api/sweeps every 2 s (while the tab shows) and redraws the rows.
import { ROOT, api } from "../lib/api.js";
import { $, el, showMessage } from "../lib/dom.js";
import { fmtFixed, fmtTime } from "../lib/format.js";
import { statusBadge } from "../lib/jobs.js";
import { stackedBar } from "../lib/sweeps.js";

const POLL_MS = 2000;
const body = $("sweeps-body");
const errorBox = $("list-error");

function row(sweep) {
  const href = `${ROOT}/sweeps/${encodeURIComponent(sweep.id)}`;
  const p = sweep.progress;
  const best = sweep.best?.best;
  return el(
    "tr",
    { dataset: { sweepId: sweep.id, status: sweep.status } },
    el("td", { class: "job-name" }, el("a", { href, text: sweep.name }), el("span", { class: "muted id", text: ` #${sweep.id}` })),
    el("td", {}, statusBadge(sweep.status)),
    el("td", { class: "col-progress" }, stackedBar(el("div", { class: "progress stacked" }), p), el("span", { class: "progress-label", text: `${p.done} / ${p.jobs}` })),
    el("td", { class: "mono keys", text: sweep.keys.join(", ") }),
    el("td", { class: "num strong", text: fmtFixed(best?.map50) }),
    el("td", { class: "time opt", title: sweep.created_at, text: fmtTime(sweep.created_at) }),
  );
}

async function refresh() {
  try {
    const sweeps = await api("/api/sweeps");
    if (sweeps.length) body.replaceChildren(...sweeps.map(row));
    else body.replaceChildren(el("tr", { class: "placeholder" }, el("td", { colspan: 6 }, "No sweeps yet. ", el("a", { href: `${ROOT}/sweeps/new`, text: "Start one." }))));
    showMessage(errorBox, "");
  } catch (err) {
    showMessage(errorBox, `Could not load the sweeps: ${err.message}`);
  }
}

let timer = null;
function schedule() {
  clearInterval(timer);
  timer = document.hidden ? null : setInterval(refresh, POLL_MS);
}
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refresh();
  schedule();
});

refresh();
schedule();
