// Numbers, durations and times as the pages show them.

/** A loss in a table column: three decimals so the column aligns; exponent when tiny or huge. */
export function fmtLoss(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e4)) return value.toExponential(2);
  return value.toFixed(3);
}

/** A metric with a fixed number of decimals; "–" when absent. */
export function fmtFixed(value, digits = 3) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

/** "1 h 02 min", "3 min 05 s", "12 s". */
export function fmtDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m) return `${m} min ${String(r).padStart(2, "0")} s`;
  return `${r} s`;
}

/** Parse an ISO time from the API; naive strings are UTC. */
export function parseTime(iso) {
  if (!iso) return null;
  const hasZone = /[zZ]|[+-]\d\d:?\d\d$/.test(iso);
  const t = Date.parse(hasZone ? iso : iso + "Z");
  return Number.isNaN(t) ? null : new Date(t);
}

/** Local "2024-05-01 14:03" for a timestamp, with a relative "3 min ago" when recent. */
export function fmtTime(iso) {
  const d = parseTime(iso);
  if (!d) return "–";
  const pad = (n) => String(n).padStart(2, "0");
  const abs = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const ago = (Date.now() - d.getTime()) / 1000;
  if (ago >= 0 && ago < 3600) return `${fmtDuration(ago).replace(/ \d+ s$/, "")} ago`;
  return abs;
}
