// Plotly on the pages: the one config, the figures the server sends, the class colours, and
// live line charts that grow in place.
//
// plotly.js is a classic deferred script that base.html loads on pages with charts; module
// scripts run after it, so `Plotly` exists when a page draws. Nothing here touches Plotly when
// the module loads, so pages without charts may import it too.
//
// A LiveChart keeps the raw points itself; Plotly gets copies. New points are queued and
// drawn with one Plotly.extendTraces per animation frame, at most every `minIntervalMs`, so
// a job reporting 50 steps/s does not redraw 50 times a second. Smoothing (TensorBoard's
// debiased exponential moving average) is applied client-side: changing it recomputes the
// smoothed traces from the raw points; new points extend the EMA incrementally.

/* global Plotly */

/** The Plotly config of every chart; `plotConfig` adds a chart's own options. */
export const PLOT_CONFIG = Object.freeze({ responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] });

/** PLOT_CONFIG with a chart's own options, e.g. `{ scrollZoom: true }` for an image to zoom into. */
export function plotConfig(options = {}) {
  return { ...PLOT_CONFIG, ...options };
}

/** Draw (or redraw in place) a figure the server sent ({data, layout}); resolves when drawn. */
export function drawFigure(div, figure, options = {}) {
  return Plotly.react(div, figure.data, figure.layout, plotConfig(options));
}

/** A figure that zooms with the wheel (images). */
export const ZOOMABLE = Object.freeze({ scrollZoom: true });

// The class colours come from the server (app/figures/dataset.py CLASS_COLORS, written into
// base.html as JSON on pages with charts), so boxes drawn here match the server's figures.
let classColors = null;

/** The colour of class `label`, the same as in the server's figures. */
export function classColor(label) {
  classColors ??= JSON.parse(document.getElementById("class-colors")?.textContent || "[]");
  return classColors.length ? classColors[Number(label) % classColors.length] : "currentColor";
}

/** TensorBoard's smoothing: a debiased EMA with weight w (0 = raw). Non-finite values pass through. */
export class Ema {
  constructor(weight) {
    this.weight = weight;
    this.last = 0;
    this.count = 0;
  }

  next(value) {
    if (!Number.isFinite(value)) return value;
    const w = this.weight;
    this.last = this.last * w + (1 - w) * value;
    this.count += 1;
    const debias = w === 1 ? 1 : 1 - Math.pow(w, this.count);
    return this.last / debias;
  }
}

const BASE_LAYOUT = {
  margin: { l: 56, r: 16, t: 8, b: 40 },
  hovermode: "x unified",
  legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
  xaxis: { title: { text: "step" }, zeroline: false, gridcolor: "#eef0f3" },
  yaxis: { zeroline: false, gridcolor: "#eef0f3" },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)",
  font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1f2937" },
  uirevision: "keep", // keep the user's zoom across updates
};

export class LiveChart {
  /**
   * @param {HTMLElement} div the chart container
   * @param {{key: string, name: string, color: string}[]} series one trace per series, in order
   * @param {{smoothable?: boolean, smoothing?: number, mode?: string, yTitle?: string, minIntervalMs?: number,
   *          maxPoints?: number, yFromZero?: boolean, emptyYRange?: number[]}} options
   */
  constructor(div, series, options = {}) {
    this.div = div;
    this.series = series;
    this.smoothable = Boolean(options.smoothable);
    this.smoothing = this.smoothable ? options.smoothing ?? 0 : 0;
    this.mode = options.mode || "lines";
    this.minIntervalMs = options.minIntervalMs ?? 100;
    this.maxPoints = options.maxPoints ?? null; // per trace; more are halved by _compact()
    this.x = [];
    this.raw = series.map(() => []);
    this.queue = [];
    this.scheduled = false;
    this.lastDraw = 0;
    this.drawCost = 0;
    this.onDraw = null; // called after each batch is drawn
    this.replace = false; // set by reset(): the next flush replaces the traces
    this._resetEma();
    const layout = structuredClone(BASE_LAYOUT);
    if (options.yTitle) layout.yaxis.title = { text: options.yTitle };
    if (options.yFromZero) layout.yaxis.rangemode = "tozero";
    // An empty chart shows this range (e.g. [0, 1] for mAP) instead of Plotly's [-1, 4].
    this.emptyYRange = options.emptyYRange || null;
    if (this.emptyYRange) Object.assign(layout.yaxis, { range: this.emptyYRange, autorange: false });
    this.ready = Plotly.newPlot(div, this._traces(), layout, plotConfig());
  }

  get length() {
    return this.x.length;
  }

  /** Trace list: the (smoothed) series first, then faint raw copies when smoothable. */
  _traces() {
    const main = this.series.map((s, i) => ({
      type: "scatter",
      mode: this.mode,
      name: s.name,
      x: this.x.slice(),
      y: this._smoothedAll(i),
      line: { color: s.color, width: 2 },
      marker: { size: 6 },
      hovertemplate: "%{y:.4g}",
    }));
    if (!this.smoothable) return main;
    const raw = this.series.map((s, i) => ({
      type: "scatter",
      mode: "lines",
      name: `${s.name} (raw)`,
      x: this.x.slice(),
      y: this.raw[i].slice(),
      line: { color: s.color, width: 1 },
      opacity: 0.25,
      showlegend: false,
      hoverinfo: "skip",
      visible: this.smoothing > 0,
    }));
    return [...main, ...raw];
  }

  _resetEma() {
    this.emas = this.series.map(() => new Ema(this.smoothing));
  }

  _smoothedAll(i) {
    if (this.smoothing <= 0) return this.raw[i].slice();
    const ema = this.emas[i];
    return this.raw[i].map((v) => ema.next(v));
  }

  /** Drop every point (the job restarted from a checkpoint). The next batch replaces the
   * traces in one redraw, so the chart never flashes empty in between; the layout stays. */
  reset() {
    this.x = [];
    this.raw = this.series.map(() => []);
    this.queue = [];
    this._resetEma();
    this.replace = true;
    this._schedule();
  }

  /** Halve the points (every other one, always the newest), to be redrawn in full: the cost
   * of a redraw grows with the points, and a long job streams without end. TensorBoard samples
   * its series the same way. */
  _compact() {
    const n = this.x.length;
    const keep = [];
    for (let i = n - 1; i >= 0; i -= 2) keep.push(i);
    keep.reverse();
    this.x = keep.map((i) => this.x[i]);
    this.raw = this.raw.map((ys) => keep.map((i) => ys[i]));
    this.replace = true;
  }

  /** Queue one record ({step, <key>: value, ...}); it is drawn on the next batch. */
  push(record) {
    this.queue.push(record);
    this._schedule();
  }

  /** Queue many records (history); drawn in one batch. */
  pushAll(records) {
    for (const r of records) this.queue.push(r);
    this._schedule();
  }

  _schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    // Space batches by a few times the last draw's cost so a big chart never hogs the page.
    const wait = Math.max(0, this.lastDraw + Math.max(this.minIntervalMs, 4 * this.drawCost) - performance.now());
    this.ready.then(() => setTimeout(() => requestAnimationFrame(() => this.flush()), wait));
  }

  /** Draw every queued record now with one extendTraces call. */
  flush() {
    this.scheduled = false;
    if (!this.queue.length && !this.replace) return;
    const batch = this.queue;
    this.queue = [];
    const started = performance.now();
    const xs = [];
    const rawYs = this.series.map(() => []);
    for (const r of batch) {
      xs.push(r.step);
      this.series.forEach((s, i) => rawYs[i].push(numberOr(r[s.key])));
    }
    this.x.push(...xs);
    rawYs.forEach((ys, i) => this.raw[i].push(...ys));
    if (this.maxPoints && this.x.length > this.maxPoints) this._compact();
    const smoothYs = rawYs.map((ys, i) => (this.smoothing > 0 ? ys.map((v) => this.emas[i].next(v)) : ys));
    const n = this.series.length;
    const indices = [...Array(this.smoothable ? 2 * n : n).keys()];
    const update = {
      x: indices.map(() => xs),
      y: this.smoothable ? [...smoothYs, ...rawYs] : smoothYs,
    };
    const wasEmpty = this.x.length === xs.length;
    if (this.replace) {
      // After reset(): the whole trace data at once (restyle takes one array per trace).
      this.replace = false;
      this._resetEma(); // _traces() smooths every point again, leaving the EMA at the end
      const traces = this._traces();
      Plotly.restyle(this.div, { x: traces.map((t) => t.x), y: traces.map((t) => t.y) }, indices);
      if (this.emptyYRange) {
        const range = xs.length ? { "yaxis.autorange": true } : { "yaxis.range": this.emptyYRange, "yaxis.autorange": false };
        Plotly.relayout(this.div, range);
      }
    } else {
      Plotly.extendTraces(this.div, update, indices);
      if (wasEmpty && this.emptyYRange) Plotly.relayout(this.div, { "yaxis.autorange": true });
    }
    this.lastDraw = performance.now();
    this.drawCost = this.lastDraw - started;
    if (this.onDraw) this.onDraw(batch);
  }

  /** Change the EMA weight (0..0.99) and recompute the smoothed traces from the raw points. */
  setSmoothing(weight) {
    if (!this.smoothable) return;
    this.flush();
    this.smoothing = weight;
    this._resetEma();
    const n = this.series.length;
    const mainIdx = [...Array(n).keys()];
    Plotly.restyle(this.div, { y: this.series.map((_, i) => this._smoothedAll(i)) }, mainIdx);
    Plotly.restyle(this.div, { visible: weight > 0 }, mainIdx.map((i) => i + n));
  }

  /** Linear or logarithmic y axis. */
  setLogScale(on) {
    // "complete" labels minor log ticks as 0.4, 0.5 rather than bare digits.
    Plotly.relayout(this.div, { "yaxis.type": on ? "log" : "linear", "yaxis.autorange": true, "yaxis.minorloglabels": "complete" });
  }

  /** Fix the x axis to [0, lastStep] (e.g. the job's total steps), so sparse points sit in context. */
  setXRange(lastStep) {
    if (lastStep > 0) Plotly.relayout(this.div, { "xaxis.range": [0, lastStep], "xaxis.autorange": false });
  }
}

function numberOr(value) {
  return typeof value === "number" ? value : null;
}
