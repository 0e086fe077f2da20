// Charts of overlaid runs: one trace per job, in the job's colour, over a shared x axis mode.
//
// An OverlayChart keeps each job's points itself ({step, wall, value} arrays, wall = seconds since
// the job's first step) and redraws with one Plotly.react, at most every few times the last
// draw's cost: ten live jobs never redraw per step. The x axis is the step, the images seen
// (step x the job's batch size) or the wall time, drawn on a date axis from 1970-01-01 00:00 so
// Plotly labels it as h:mm:ss (a run of more than a day wraps around). Smoothing is the job page's TensorBoard EMA (plots.js), applied
// per job; with smoothing on, a faint copy of the raw points stays behind each trace.

/* global Plotly */
import { Ema, plotConfig } from "./plots.js";

const MIN_INTERVAL_MS = 150;

const LAYOUT = {
  margin: { l: 56, r: 16, t: 8, b: 44 },
  hovermode: "closest",
  showlegend: false, // the page's jobs table is the legend (same colours), shared by every chart
  xaxis: { zeroline: false, gridcolor: "#eef0f3" },
  yaxis: { zeroline: false, gridcolor: "#eef0f3" },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)",
  font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1f2937" },
  uirevision: "keep",
};

/** The x axis modes: axis title and layout for each. */
export const X_AXES = {
  step: { title: "step", axis: { type: "linear" } },
  images: { title: "images seen", axis: { type: "linear" } },
  wall: { title: "wall time since the first step (h:mm:ss)", axis: { type: "date", tickformat: "%H:%M:%S", hoverformat: "%H:%M:%S" } },
};

/** x values of a job's points in `mode`. */
export function xValues(mode, steps, walls, batchSize) {
  if (mode === "images") return steps.map((s) => s * (batchSize || 1));
  if (mode === "wall") return walls.map(wallDate);
  return steps;
}

/** Seconds since the first step as a date string from 1970-01-01 00:00 UTC. Strings, because
 * Plotly reads a number on a date axis as a year when it looks like one (1500 ms: year 1500). */
export function wallDate(seconds) {
  if (seconds === null || !Number.isFinite(seconds)) return null;
  return new Date(seconds * 1000).toISOString().slice(0, 23).replace("T", " ");
}

/**
 * Halve a long series, keeping spikes: per bucket of 6 points the first, the lowest and the
 * highest (the server's decimation, app/services/compare.py, on a finer grid). The last point stays.
 */
export function compact(points) {
  const { step, wall, value } = points;
  const keep = [];
  for (let start = 0; start < step.length; start += 6) {
    const end = Math.min(start + 6, step.length);
    let lo = start;
    let hi = start;
    for (let i = start; i < end; i++) {
      const v = value[i];
      if (!Number.isFinite(v)) continue; // null (NaN on the server) is never a bucket's extreme
      if (!Number.isFinite(value[lo]) || v < value[lo]) lo = i;
      if (!Number.isFinite(value[hi]) || v > value[hi]) hi = i;
    }
    for (const i of [...new Set([start, lo, hi])].sort((a, b) => a - b)) keep.push(i);
  }
  if (keep[keep.length - 1] !== step.length - 1) keep.push(step.length - 1);
  return { step: keep.map((i) => step[i]), wall: keep.map((i) => wall[i]), value: keep.map((i) => value[i]) };
}

export class OverlayChart {
  /**
   * @param {HTMLElement} div the chart container
   * @param {{yTitle?: string, smoothable?: boolean, mode?: string, yFromZero?: boolean, maxPoints?: number}} options
   */
  constructor(div, options = {}) {
    this.div = div;
    this.smoothable = Boolean(options.smoothable);
    this.mode = options.mode || "lines";
    this.yTitle = options.yTitle || "";
    this.yFromZero = Boolean(options.yFromZero);
    this.maxPoints = options.maxPoints || 4000; // per job; more are compacted
    this.jobs = []; // [{id, name, color, batch}]
    this.points = new Map(); // id -> {step, wall, value}
    this.hidden = new Set();
    this.xMode = "step";
    this.smoothing = 0;
    this.logScale = false;
    this.scheduled = false;
    this.lastDraw = 0;
    this.drawCost = 0;
    this.onDraw = null;
  }

  /** The jobs, in order ({id, name, color, batch}); their points start empty. */
  setJobs(jobs) {
    this.jobs = jobs;
    this.points = new Map(jobs.map((j) => [j.id, { step: [], wall: [], value: [] }]));
    this.schedule();
  }

  /** Replace a job's points ({step, wall, value} arrays). */
  setPoints(id, points) {
    this.points.set(id, { step: [...points.step], wall: [...points.wall], value: [...points.value] });
    this.schedule();
  }

  /** Append one point to a job (a live step); older points are compacted past `maxPoints`. */
  append(id, step, wall, value) {
    let p = this.points.get(id);
    if (!p) return;
    p.step.push(step);
    p.wall.push(wall);
    p.value.push(value);
    if (p.step.length > this.maxPoints) this.points.set(id, (p = compact(p)));
    this.schedule();
  }

  setXMode(mode) {
    this.xMode = mode;
    this.schedule();
  }

  setSmoothing(weight) {
    this.smoothing = this.smoothable ? weight : 0;
    this.schedule();
  }

  setLogScale(on) {
    this.logScale = on;
    this.schedule();
  }

  setHidden(id, hidden) {
    if (hidden) this.hidden.add(id);
    else this.hidden.delete(id);
    this.schedule();
  }

  /** Number of points drawn across the jobs. */
  get length() {
    let n = 0;
    for (const p of this.points.values()) n += p.step.length;
    return n;
  }

  /** One smoothed trace per job (meta.role "main"), then a faint raw one per job when smoothing. */
  traces() {
    const main = [];
    const raw = [];
    for (const job of this.jobs) {
      const p = this.points.get(job.id);
      const x = xValues(this.xMode, p.step, p.wall, job.batch);
      const visible = !this.hidden.has(job.id);
      const customdata = p.step;
      let y = p.value;
      if (this.smoothing > 0) {
        const ema = new Ema(this.smoothing);
        y = p.value.map((v) => ema.next(v));
      }
      main.push({
        type: "scatter",
        mode: this.mode,
        name: job.name,
        x,
        y,
        customdata,
        visible,
        line: { color: job.color, width: 2 },
        marker: { color: job.color, size: 7 },
        meta: { role: "main", job: job.id },
        hovertemplate: `<b>${escapeHtml(job.name)}</b><br>step %{customdata}<br>%{y:.4g}<extra></extra>`,
      });
      if (this.smoothable && this.smoothing > 0) {
        raw.push({
          type: "scatter",
          mode: "lines",
          name: `${job.name} (raw)`,
          x,
          y: p.value,
          visible,
          line: { color: job.color, width: 1 },
          opacity: 0.22,
          hoverinfo: "skip",
          meta: { role: "raw", job: job.id },
        });
      }
    }
    return [...raw, ...main]; // raw underneath
  }

  layout() {
    const layout = structuredClone(LAYOUT);
    const x = X_AXES[this.xMode];
    Object.assign(layout.xaxis, x.axis, { title: { text: x.title } });
    layout.yaxis.title = { text: this.yTitle };
    layout.yaxis.type = this.logScale ? "log" : "linear";
    // Ticks at 1, 2 and 5 of each decade, labelled in full (0.2, 0.5): every digit is too crowded.
    if (this.logScale) Object.assign(layout.yaxis, { dtick: "D2", minorloglabels: "complete" });
    if (this.yFromZero && !this.logScale) layout.yaxis.rangemode = "tozero";
    // A new x mode or scale is a new view: let Plotly autorange again, keep zoom otherwise.
    layout.uirevision = `${this.xMode}-${this.logScale}`;
    return layout;
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    const wait = Math.max(0, this.lastDraw + Math.max(MIN_INTERVAL_MS, 4 * this.drawCost) - performance.now());
    setTimeout(() => requestAnimationFrame(() => this.draw()), wait);
  }

  /** Redraw now. */
  draw() {
    this.scheduled = false;
    const started = performance.now();
    const done = Plotly.react(this.div, this.traces(), this.layout(), plotConfig());
    this.lastDraw = performance.now();
    this.drawCost = this.lastDraw - started;
    if (this.onDraw) this.onDraw();
    return done;
  }
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}
