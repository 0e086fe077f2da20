// The new-job form's "Before you start" panel: POST /api/config/plan with the draft, shown as the
// fields change (debounced; an answer to an older draft is dropped).
import { api } from "./api.js";
import { isValidationError } from "./config_form.js";
import { ROOT } from "./api.js";
import { el } from "./dom.js";
import { fmtDuration } from "./format.js";

const DEBOUNCE_MS = 500;
const pct = (share) => `${(100 * share).toFixed(1)}%`;

/** The prior explorer on a draft's whole config (priors.js reads ?draft=). */
export function explorerHref(config) {
  return `${ROOT}/priors?${new URLSearchParams({ draft: JSON.stringify(config) })}`;
}

/**
 * Mount on `root`; `draft()` returns the body POST /api/jobs would get (null: the form has
 * errors); `onPlan(plan)` runs with each plan shown.
 */
export function mountPlanPanel(root, draft, onPlan = null) {
  let timer = null;
  let asked = 0;

  function line(label, ...value) {
    return el("li", {}, el("strong", { text: `${label}: ` }), ...value);
  }

  function render(plan) {
    const c = plan.coverage;
    const items = [];
    items.push(
      line(
        "Priors",
        `${pct(c.unmatched_share)} of ${c.boxes} training boxes (first ${c.images} images) have no prior at IoU ${c.iou_threshold}` +
          ` at ${plan.config.data.image_size} px; ${pct(c.below_smallest_prior_share)} are smaller than the smallest prior (${c.smallest_prior} px) · `,
        el("a", { href: explorerHref(plan.config), id: "plan-priors-link", text: "open the prior explorer with this draft" }),
      ),
    );
    const m = plan.memory;
    items.push(line("Memory", `about ${m.estimate_gib} GiB of ${m.limit_gib} GiB allowed`));
    const t = plan.time;
    const budget = t.budget_minutes ? `the run fits its steps to end after ${t.budget_minutes} min (train.time_budget); at most ` : "";
    items.push(
      line(
        "Time",
        budget,
        t.seconds === null
          ? `${t.images.toLocaleString()} training images; no finished run of this backbone at this input size on this server yet to time it by`
          : `about ${fmtDuration(t.seconds)} of training (${t.images.toLocaleString()} images at ${t.images_per_sec} images/s, the median of ${t.runs} earlier run${t.runs === 1 ? "" : "s"}), evaluations aside`,
      ),
    );
    if (plan.choices.length) {
      items.push(line("Fitted to the data", el("ul", {}, ...plan.choices.map((ch) => el("li", { class: "mono-ish", text: ch.text })))));
    }
    const warnings = plan.warnings.map((w) => el("li", { class: "plan-warning", dataset: { field: w.field } }, el("strong", { text: `${w.field}: ` }), w.message));
    root.replaceChildren(
      el("ul", { class: "plan-facts" }, ...items),
      warnings.length ? el("div", { class: "plan-warnings", role: "alert" }, el("ul", {}, ...warnings)) : el("p", { class: "muted", text: "No warnings." }),
    );
    root.dataset.state = warnings.length ? "warn" : "ok";
  }

  async function refresh() {
    const body = draft();
    if (!body) return;
    const mine = ++asked;
    root.dataset.state = "loading";
    try {
      const plan = await api("/api/config/plan", { method: "POST", body });
      if (mine === asked) {
        render(plan);
        if (onPlan) onPlan(plan);
      }
    } catch (err) {
      if (mine !== asked) return;
      const detail = isValidationError(err) ? err.body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ") : err.message;
      root.replaceChildren(el("p", { class: "muted", text: `No plan for this draft yet: ${detail}` }));
      root.dataset.state = "invalid";
    }
  }

  return {
    update() {
      clearTimeout(timer);
      timer = setTimeout(refresh, DEBOUNCE_MS);
    },
    refresh,
  };
}
