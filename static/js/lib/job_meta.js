// The job page's "Name, tags and notes" form: PATCH /api/jobs/{id} with the fields that changed.
//
// The form is filled once from the job and then left to the person typing: the page's refreshes
// never overwrite an edit in progress. Tags are typed as a comma-separated list (the server
// refuses a comma inside a tag, so the list always reads back the same). A refusal (422) names
// the field; it is shown next to the Save button and the field is marked invalid.
import { api } from "./api.js";

const splitTags = (text) => text.split(",").map((t) => t.trim()).filter(Boolean);

/**
 * Wire the form `form` (inputs named name, tags, notes; a submit button; `status` for messages)
 * to the job at `jobUrl`. `onSaved(job)` receives the job the server answers after a save.
 */
export function mountMetaEditor(form, status, job, jobUrl, onSaved) {
  const fields = { name: form.elements.name, tags: form.elements.tags, notes: form.elements.notes };
  const save = form.querySelector("button[type=submit]");
  let saved = {};

  function fill(values) {
    saved = { name: values.name || "", tags: (values.tags || []).join(", "), notes: values.notes || "" };
    for (const [key, input] of Object.entries(fields)) input.value = saved[key];
    dirty();
  }

  function changes() {
    const out = {};
    if (fields.name.value.trim() !== saved.name) out.name = fields.name.value;
    if (splitTags(fields.tags.value).join(", ") !== saved.tags) out.tags = splitTags(fields.tags.value);
    if (fields.notes.value !== saved.notes) out.notes = fields.notes.value;
    return out;
  }

  function dirty() {
    save.disabled = !Object.keys(changes()).length;
  }

  form.addEventListener("input", () => {
    dirty();
    status.textContent = "";
    for (const input of Object.values(fields)) input.removeAttribute("aria-invalid");
  });
  // Ctrl/Cmd+Enter saves from the notes, as in most editors.
  fields.notes.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = changes();
    if (!Object.keys(body).length) return;
    save.disabled = true;
    status.textContent = "Saving…";
    try {
      const updated = await api(jobUrl, { method: "PATCH", body });
      fill(updated);
      status.textContent = "Saved.";
      onSaved(updated);
    } catch (err) {
      const detail = err.body && Array.isArray(err.body.detail) ? err.body.detail[0] : null;
      const field = detail && detail.loc ? detail.loc[1] : null;
      if (field && fields[field]) fields[field].setAttribute("aria-invalid", "true");
      status.textContent = detail ? `${field}: ${detail.msg.replace(/^Value error, /, "")}` : `Could not save: ${err.message}`;
      dirty();
    }
  });
  fill(job);
}
