// The compare page's settings: the config table (only the keys that differ, or all of them) and
// one small chart per differing numeric setting against each job's best mAP@.5.
//
// Rows come from GET /api/compare's "config": [{key: "train.learning_rate", values: [one per
// job], differs}], dotted keys flattened on the server (app/services/compare.py).

/* global Plotly */
import { el } from "./dom.js";
import { plotConfig } from "./plots.js";

/** A config value for reading: bare strings, string lists as "a, b", other values as JSON. */
export function configValue(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "string") return v;
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v.join(", ");
  return JSON.stringify(v).replace(/,/g, ", ");
}

function jobHeader(job) {
  return el("th", { scope: "col", title: job.id }, el("span", { class: "swatch-job", style: `background:${job.color}` }), job.name || job.id);
}

/**
 * The config table into `table` ({head, body, summary} elements): a column per job, a row per
 * differing key (`all`: every key, the differing ones marked). A cell that differs from the
 * first job's value is highlighted.
 */
export function renderConfigDiff(table, rows, jobs, all) {
  const differing = rows.filter((r) => r.differs);
  const shown = all ? rows : differing;
  table.summary.textContent = `${differing.length} of ${rows.length} keys differ`;
  table.head.replaceChildren(el("tr", {}, el("th", { scope: "col", text: "key" }), ...jobs.map(jobHeader)));
  if (!shown.length) {
    const text = all ? "No settings." : "Every setting is the same (the toggle shows them all).";
    table.body.replaceChildren(el("tr", {}, el("td", { class: "muted", colspan: jobs.length + 1, text })));
    return;
  }
  table.body.replaceChildren(
    ...shown.map((row) => {
      const first = JSON.stringify(row.values[0]);
      return el(
        "tr",
        { class: row.differs ? "differs" : "", dataset: { key: row.key } },
        el("th", { scope: "row" }, el("code", { text: row.key })),
        ...row.values.map((v, i) =>
          el("td", { class: row.differs && i > 0 && JSON.stringify(v) !== first ? "changed" : "" }, el("code", { text: configValue(v) })),
        ),
      );
    }),
  );
}

/** The differing rows whose values are all plain numbers (not booleans), for the scatter plots. */
export function numericDiffs(rows) {
  return rows.filter((r) => r.differs && r.values.every((v) => typeof v === "number"));
}

/**
 * One scatter per differing numeric setting: x the setting, y the job's best mAP@.5, a marker
 * per job in its colour. `container` receives the charts, `empty` says why there are none.
 */
export function renderHparams(container, empty, rows, jobs) {
  const numeric = numericDiffs(rows);
  const scored = jobs.some((j) => j.best && j.best.map50);
  let why = "";
  if (!numeric.length) why = "No numeric setting differs between these jobs.";
  else if (!scored) why = "No job has a validation mAP yet: each marker needs one evaluation.";
  empty.textContent = why;
  empty.hidden = !why;
  if (why) {
    container.replaceChildren();
    return;
  }
  // Reuse a key's chart div across redraws (live jobs): Plotly.react updates it in place.
  const existing = new Map([...container.children].map((div) => [div.dataset.key, div]));
  const divs = numeric.map((row) => existing.get(row.key) || el("div", { class: "hparam-chart", dataset: { key: row.key } }));
  container.replaceChildren(...divs);
  numeric.forEach((row, k) => {
    const traces = jobs.map((job, i) => ({
      type: "scatter",
      mode: "markers",
      name: job.name,
      x: job.best && job.best.map50 ? [row.values[i]] : [],
      y: job.best && job.best.map50 ? [job.best.map50.value] : [],
      marker: { color: job.color, size: 12, line: { color: "#fff", width: 1 } },
      meta: { job: job.id },
      hovertemplate: `${job.name}<br>${row.key} = %{x}<br>best mAP@.5 %{y:.3f}<extra></extra>`,
    }));
    const positive = row.values.filter((v) => v > 0);
    // Learning rates and the like span decades: a log axis when every value is positive and they do.
    const log = positive.length === row.values.length && Math.max(...positive) / Math.min(...positive) >= 20;
    const layout = {
      margin: { l: 52, r: 12, t: 8, b: 44 },
      showlegend: false,
      hovermode: "closest",
      xaxis: { title: { text: row.key }, type: log ? "log" : "linear", gridcolor: "#eef0f3", zeroline: false },
      yaxis: { title: { text: "best mAP@.5" }, gridcolor: "#eef0f3", zeroline: false },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1f2937" },
    };
    Plotly.react(divs[k], traces, layout, plotConfig());
  });
}
