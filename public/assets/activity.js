// The dashboard's activity section: each request of the user's keys, newest first, from
// GET /api/activity: filters, older pages on demand, a copyable request id, a CSV.
import { api, copy, el, say } from "/assets/common.js";
import { download, keyLabel } from "/assets/usage.js";

const $ = (id) => document.getElementById(id);
const PAGE = 25;

let session = null; // { token, names, failed }
let last = null; // the last entry shown: the next page starts after it
let reading = null; // the read under way, aborted when the filters change

function filters() {
  const query = new URLSearchParams();
  for (const [name, id] of [["keyId", "activity-key"], ["model", "activity-model"], ["status", "activity-status"]]) {
    if ($(id).value) query.set(name, $(id).value);
  }
  return query;
}

function time(ms) {
  return new Date(ms).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

function tokens(entry) {
  if (entry.images) return `${entry.images} image${entry.images > 1 ? "s" : ""}`;
  if (entry.videoSeconds) return `${entry.videoSeconds} s of video`;
  return `${entry.promptTokens} + ${entry.completionTokens}`;
}

function row(entry) {
  const copyId = el("button", { type: "button", className: "secondary small" }, "Copy");
  copyId.setAttribute("aria-label", `Copy request id ${entry.id}`);
  copyId.addEventListener("click", () => copy(entry.id, copyId));
  const status = entry.error ? `${entry.status} ${entry.error}` : String(entry.status);
  const provider = entry.provider ? `${entry.provider}${entry.fallback ? " (fallback)" : ""}` : "—";
  return el(
    "tr",
    { className: entry.error ? "failed" : "", attrs: { "data-id": entry.id } },
    el("td", { className: "date" }, time(entry.time)),
    el("td", {}, keyLabel(session.names, entry.keyId)),
    el("td", {}, entry.model || "(none)", entry.stream ? " · stream" : ""),
    el("td", {}, provider),
    el("td", { className: entry.error ? "error" : "" }, status),
    el("td", {}, `${entry.latencyMs.toLocaleString()} ms`),
    el("td", {}, tokens(entry)),
    el("td", { className: "request-id" }, el("code", {}, entry.id), " ", copyId),
  );
}

/** One page: the newest one when `more` is false, else the one after the last entry shown. */
async function read(more) {
  if (reading) reading.abort();
  reading = new AbortController();
  const note = $("activity-note");
  const query = filters();
  query.set("limit", String(PAGE));
  if (more && last) query.set("before", last);
  say(note, more ? "Loading older requests…" : "Loading…");
  let page;
  try {
    page = await (await api(`/api/activity?${query}`, { token: session.token, signal: reading.signal })).json();
  } catch (error) {
    if (error.name !== "AbortError") session.failed(note, error);
    return;
  }
  const body = $("activity-table").tBodies[0];
  const rows = page.data.map(row);
  if (more) body.append(...rows);
  else body.replaceChildren(...rows);
  if (page.data.length) last = page.data[page.data.length - 1].id;
  const shown = body.rows.length;
  $("activity-more").classList.toggle("hidden", !page.hasMore);
  $("activity-table").classList.toggle("hidden", shown === 0);
  const filtered = [...filters().keys()].length > 0;
  if (!shown) say(note, filtered ? "No requests match these filters." : "No requests yet: calls made with your keys show up here.");
  else say(note, `${shown} request${shown > 1 ? "s" : ""} shown${page.hasMore ? ", older ones below" : ""}.`);
  note.classList.add("muted");
  if (more && rows.length) rows[0].querySelector("button").focus(); // the keyboard goes on where the new rows start
}

function options(select, entries, all) {
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, all), ...entries.map(([value, label]) => el("option", { value }, label)));
  if (entries.some(([value]) => value === chosen)) select.value = chosen;
}

/** Show the newest requests; `names` maps key ids to labels, `models` the models to filter by. */
export async function showActivity(token, names, models, failed) {
  session = { token, names, failed };
  last = null;
  options($("activity-key"), [...names.entries()], "All keys");
  options($("activity-model"), [...models].sort().map((m) => [m, m]), "All models");
  await read(false);
}

function start() {
  for (const id of ["activity-key", "activity-model", "activity-status"]) {
    $(id).addEventListener("change", () => {
      last = null;
      read(false);
    });
  }
  $("activity-more").addEventListener("click", () => read(true));
  $("activity-refresh").addEventListener("click", () => read(false));
  $("activity-csv").addEventListener("click", () => {
    const query = filters();
    query.set("format", "csv");
    download(`/api/activity?${query}`, session.token, "cloudgpt-activity.csv").catch((error) => session.failed($("activity-note"), error));
  });
}

start();
