// What every page shares: building elements (text always as text, never as HTML),
// calling the API and reading its error envelope, the rate-limit headers, copying.

/** An element with properties, attributes (`attrs`) and children (strings become text nodes). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { attrs, ...rest } = props;
  Object.assign(node, rest);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Show `message` in a status line, as text; `kind` is "error", "ok" or "". */
export function say(node, message, kind = "") {
  node.textContent = message;
  node.className = `status ${kind}`.trim();
}

/** An API failure: the envelope's message and code, the HTTP status, the response. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = "", param = "", response = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param; // the request field at fault, when there is one
    this.response = response;
  }
}

/** The error a non-2xx response stands for, in plain words. */
export async function apiError(response) {
  let message = `The server answered ${response.status}.`;
  let code = "";
  let param = "";
  try {
    const body = await response.json();
    if (body && body.error) {
      message = String(body.error.message || message);
      code = String(body.error.code || "");
      param = String(body.error.param || "");
    }
  } catch {
    // not JSON: keep the status line
  }
  const retry = response.status === 429 ? retryText(response) : "";
  // Said once: the server's own "retry after N s" gives way to when, in the reader's time.
  if (retry) message = `${message.replace(/[;,.]?\s*retry after \d+ s\.?$/i, ".")} ${retry}`;
  return new ApiError(message, { status: response.status, code, param, response });
}

/** fetch() that throws ApiError for a non-2xx answer or a network failure. */
export async function api(path, { token, json, method, signal } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method: method || (json !== undefined ? "POST" : "GET"),
      headers,
      body: json !== undefined ? JSON.stringify(json) : undefined,
      signal,
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("The server could not be reached. Check your connection and try again.");
  }
  if (!response.ok) throw await apiError(response);
  return response;
}

/** "Try again in 42 s (at 14:03:10)." from a 429's Retry-After, else from X-RateLimit-Reset. */
export function retryText(response) {
  let seconds = Number(response.headers.get("Retry-After"));
  if (!Number.isFinite(seconds) || seconds <= 0) {
    const reset = Number(response.headers.get("X-RateLimit-Reset"));
    seconds = Number.isFinite(reset) && reset > 0 ? Math.max(1, Math.ceil(reset - Date.now() / 1000)) : 0;
  }
  if (!seconds) return "";
  const at = new Date(Date.now() + seconds * 1000).toLocaleTimeString();
  return `Try again in ${seconds} s (at ${at}).`;
}

/** The rate-limit headers of an answer, in words; "" when it carries none. */
export function limitsText(response) {
  const limit = response.headers.get("X-RateLimit-Limit");
  if (!limit) return "";
  const remaining = response.headers.get("X-RateLimit-Remaining");
  const reset = Number(response.headers.get("X-RateLimit-Reset"));
  const parts = [`Limit ${limit}/min`];
  parts.push(remaining === null ? "remaining unchecked" : `${remaining} left`);
  if (reset) parts.push(`window resets ${new Date(reset * 1000).toLocaleTimeString()}`);
  return parts.join(" · ");
}

/** Copy `text`; the button says whether it worked. */
export async function copy(text, button) {
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed: select and copy by hand";
  }
  setTimeout(() => {
    button.textContent = label;
  }, 2500);
}

/** The models of one modality, from GET /api/models. */
export async function models() {
  const response = await api("/api/models");
  return (await response.json()).data;
}

/** A date (Unix seconds, or null) as the reader's local date and time. */
export function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "never";
}

/**
 * Tables marked `stack` become one block per row on a narrow screen (site.css), each cell
 * labelled with its column's heading: every cell gets `data-label`, now and whenever rows change.
 */
export function stackTables(root) {
  for (const table of root.querySelectorAll("table.stack")) {
    const label = () => {
      const headings = [...table.tHead.rows[0].cells].map((th) => th.textContent.trim());
      for (const row of table.tBodies[0].rows) {
        [...row.cells].forEach((cell, i) => {
          if (headings[i] && cell.colSpan === 1) cell.dataset.label = headings[i];
        });
      }
    };
    label();
    new MutationObserver(label).observe(table.tBodies[0], { childList: true });
  }
}

/** Fill `container` with one tab button per name; `chosen(name)` when one is pressed. */
export function tabs(container, names, chosen) {
  container.replaceChildren(
    ...names.map((name) => {
      const tab = el("button", { type: "button", value: name, attrs: { role: "tab" } }, name);
      tab.addEventListener("click", () => chosen(name));
      return tab;
    }),
  );
}

/** Mark the tab of `name` as the selected one. */
export function selectTab(container, name) {
  for (const tab of container.children) tab.setAttribute("aria-selected", String(tab.value === name));
}
