// A key's controls on /dashboard: a line saying what each key may do, and the fields that set
// them when a key is made and change them later (PATCH /api/keys/{id}). Text is always set as text.
import { api, el, say } from "/assets/common.js";

const MODALITIES = ["chat", "image", "video"];
const DAY = 86400;

function utcDate(seconds) {
  return new Date(seconds * 1000).toISOString().slice(0, 10);
}

/** What the key may do, in a few words: "Disabled · Expires after 2027-01-31 (UTC) · Models: openai · ...". */
export function summary(key, now = Date.now() / 1000) {
  const parts = [];
  if (key.disabled) parts.push("Disabled");
  if (key.expires) {
    parts.push(key.expires <= now ? `Expired ${utcDate(key.expires - 1)} (UTC)` : `Expires after ${utcDate(key.expires - 1)} (UTC)`);
  }
  if (key.models) parts.push(`Models: ${key.models.join(", ")}`);
  const limits = MODALITIES.filter((m) => key.limits && key.limits[m]).map((m) => `${m} ${key.limits[m]}/min`);
  if (limits.length) parts.push(`Own limits: ${limits.join(", ")}`);
  if (key.quota) {
    const used = key.quotaUsed || { requests: 0, tokens: 0 };
    const caps = [];
    if (key.quota.requests) caps.push(`${used.requests} of ${key.quota.requests} requests`);
    if (key.quota.tokens) caps.push(`${used.tokens} of ${key.quota.tokens} tokens`);
    parts.push(`Quota: ${caps.join(", ")} this ${key.quota.period === "day" ? "UTC day" : "UTC month"}`);
  }
  return parts.length ? parts.join(" · ") : "None: all the account may do";
}

function field(id, label, input, hint) {
  input.id = id;
  const help = hint ? el("span", { className: "muted hint", id: `${id}-hint` }, hint) : null;
  if (help) input.setAttribute("aria-describedby", help.id);
  return el("div", { className: "control" }, el("label", { htmlFor: id }, label), input, help);
}

function number(param) {
  return el("input", { type: "number", min: "1", step: "1", inputMode: "numeric", attrs: { "data-param": param } });
}

/** The controls' fields, filled from `key` when one is given (editing); ids start with `prefix`. */
export function fields(prefix, key = null) {
  const expires = el("input", { type: "date", attrs: { "data-param": "expires" } });
  const models = el("input", { type: "text", autocomplete: "off", placeholder: "openai, flux", attrs: { "data-param": "models" } });
  const limits = MODALITIES.map((m) => number(`limits.${m}`));
  const period = el(
    "select",
    { attrs: { "data-param": "quota.period" } },
    el("option", { value: "" }, "No quota"),
    el("option", { value: "day" }, "Per UTC day"),
    el("option", { value: "month" }, "Per UTC month"),
  );
  const requests = number("quota.requests");
  const tokens = number("quota.tokens");
  const box = el(
    "fieldset",
    { className: "controls" },
    el("legend", {}, "Controls (all optional)"),
    field(`${prefix}-expires`, "Works until the end of (UTC day)", expires, "Empty: never expires."),
    field(`${prefix}-models`, "Models it may call", models, "Model ids, separated by commas. Empty: every model."),
    ...MODALITIES.map((m, i) => field(`${prefix}-limit-${m}`, `${m[0].toUpperCase()}${m.slice(1)} requests per minute`, limits[i], i === 0 ? "Empty: only the account's limit." : "")),
    field(`${prefix}-quota-period`, "Quota", period),
    field(`${prefix}-quota-requests`, "Requests per quota period", requests, "Empty: no request cap."),
    field(`${prefix}-quota-tokens`, "Tokens per quota period", tokens, "Empty: no token cap. Counted as answers end, so one answer may go past it."),
  );
  if (key) {
    const disabled = el("input", { type: "checkbox", id: `${prefix}-disabled`, attrs: { "data-param": "disabled" } });
    disabled.checked = key.disabled;
    box.append(el("label", { className: "inline", htmlFor: disabled.id }, disabled, "Disabled: refuse this key until enabled again"));
    if (key.expires) expires.value = utcDate(key.expires - 1);
    if (key.models) models.value = key.models.join(", ");
    MODALITIES.forEach((m, i) => {
      if (key.limits && key.limits[m]) limits[i].value = String(key.limits[m]);
    });
    if (key.quota) {
      period.value = key.quota.period;
      if (key.quota.requests) requests.value = String(key.quota.requests);
      if (key.quota.tokens) tokens.value = String(key.quota.tokens);
    }
  }
  return box;
}

class FieldError extends Error {
  constructor(input, message) {
    super(message);
    this.input = input;
  }
}

function whole(input) {
  const text = input.value.trim();
  if (!text) return null;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new FieldError(input, "must be a whole number of at least 1");
  return value;
}

/** The controls the fields say, as POST and PATCH /api/keys take them; a FieldError in plain words. */
export function read(box) {
  const get = (param) => box.querySelector(`[data-param="${param}"]`);
  const controls = {};
  const day = get("expires").value;
  controls.expires = day ? Date.parse(`${day}T00:00:00Z`) / 1000 + DAY : null;
  if (controls.expires !== null && controls.expires <= Date.now() / 1000) {
    throw new FieldError(get("expires"), "must be today or a later day");
  }
  const models = get("models").value.split(/[\s,]+/).filter(Boolean);
  controls.models = models.length ? models : null;
  const limits = Object.fromEntries(MODALITIES.map((m) => [m, whole(get(`limits.${m}`))]));
  controls.limits = Object.values(limits).some((v) => v !== null) ? limits : null;
  const period = get("quota.period").value;
  const requests = whole(get("quota.requests"));
  const tokens = whole(get("quota.tokens"));
  if (!period && (requests || tokens)) throw new FieldError(get("quota.period"), "choose a day or a month for the caps below");
  if (period && !requests && !tokens) throw new FieldError(get("quota.requests"), "give a request or a token cap, or choose No quota");
  controls.quota = period ? { period, requests, tokens } : null;
  const disabled = get("disabled");
  if (disabled) controls.disabled = disabled.checked;
  return controls;
}

function labelOf(box, input) {
  const label = input && box.querySelector(`label[for="${input.id}"]`);
  return label ? label.textContent.trim() : "";
}

/** An error about one field, said in plain words next to its label, with focus on the field. */
export function explain(box, status, error) {
  let input = error instanceof FieldError ? error.input : null;
  if (!input && error.param) {
    const param = error.param.replace(/\[\d+\]$/, "");
    input = box.querySelector(`[data-param="${param}"]`);
  }
  if (!input) return false;
  const message = error instanceof FieldError ? error.message : error.message.replace(/^Invalid '[^']*': /, "");
  say(status, `${labelOf(box, input)}: ${message}`, "error");
  input.setAttribute("aria-invalid", "true");
  input.addEventListener("input", () => input.removeAttribute("aria-invalid"), { once: true });
  input.focus();
  return true;
}

/** An "Edit" button that opens the key's controls under its row; `saved` runs after a change. */
export function editButton(key, { token, status, failed, saved }) {
  const button = el("button", { type: "button", className: "secondary" }, "Edit");
  button.setAttribute("aria-label", `Edit controls of ${key.name}`);
  button.setAttribute("aria-expanded", "false");
  button.addEventListener("click", () => {
    const row = button.closest("tr");
    const open = row.nextElementSibling && row.nextElementSibling.classList.contains("editor");
    if (open) {
      row.nextElementSibling.remove();
      button.setAttribute("aria-expanded", "false");
      return;
    }
    const prefix = `edit-${key.id}`;
    const box = fields(prefix, key);
    const save = el("button", { type: "submit" }, "Save controls");
    const cancel = el("button", { type: "button", className: "secondary" }, "Cancel");
    const form = el("form", { className: "editor-form", noValidate: true }, box, el("div", { className: "actions" }, save, cancel));
    form.setAttribute("aria-label", `Controls of ${key.name}`);
    const editor = el("tr", { className: "editor" }, el("td", { colSpan: row.cells.length }, form));
    row.after(editor);
    button.setAttribute("aria-expanded", "true");
    cancel.addEventListener("click", () => {
      editor.remove();
      button.setAttribute("aria-expanded", "false");
      button.focus();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const changes = read(box);
        await api(`/api/keys/${encodeURIComponent(key.id)}`, { token, method: "PATCH", json: changes });
        await saved(); // the table drawn again, then what happened said over its key count
        say(status, `Saved the controls of “${key.name}”. They hold on every server within a second.`, "ok");
      } catch (error) {
        if (!explain(box, status, error)) failed(status, error);
      }
    });
    box.querySelector("input").focus();
  });
  return button;
}
