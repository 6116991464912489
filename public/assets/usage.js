// The dashboard's usage section: the period's totals, requests per day (a chart, and the same
// numbers in a table a keyboard or a screen reader reaches), usage per key and model, a CSV.
import { ApiError, api, el, say } from "/assets/common.js";

const $ = (id) => document.getElementById(id);
const MODALITIES = ["chat", "image", "video"];
const DAYS = 30;

/** Each key id's label: the keys listed now, then the revoked ones the usage report still names. */
export function keyNames(keys, revoked = {}) {
  const names = new Map(Object.entries(revoked).map(([id, name]) => [id, `${name} (revoked)`]));
  for (const key of keys) names.set(key.id, `${key.name} (${key.prefix})`);
  return names;
}

/** A key's label, or its id said to be a revoked key when nothing names it; no key: a signed-in call. */
export function keyLabel(names, id) {
  if (!id) return "signed in, no key (playground)";
  return names.get(id) || `Revoked key ${id}`;
}

/** Fetch `path` with the account's token and hand it to the browser as a file named `name`. */
export async function download(path, token, name) {
  const response = await api(path, { token });
  const link = el("a", { href: URL.createObjectURL(await response.blob()), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Every UTC day of the report, oldest first, with its requests per modality. */
function perDay(usage) {
  const days = new Map();
  for (let d = new Date(`${usage.from}T00:00:00Z`); d <= new Date(`${usage.to}T00:00:00Z`); d.setUTCDate(d.getUTCDate() + 1)) {
    days.set(d.toISOString().slice(0, 10), { chat: 0, image: 0, video: 0 });
  }
  for (const row of usage.data) {
    const day = days.get(row.date);
    if (day && row.modality in day) day[row.modality] += row.requests;
  }
  return days;
}

function dayLabel(day, today) {
  const date = new Date(`${day}T00:00:00Z`).toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
  return day === today ? `today (UTC), ${date}` : date;
}

/** Stacked bars, one colour per modality; the dates and the peak as text under it, readable at any width. */
function chart(days, today) {
  const counts = [...days.values()];
  const peak = Math.max(1, ...counts.map((t) => t.chat + t.image + t.video));
  const width = 600;
  const height = 140;
  const bar = width / Math.max(days.size, 1);
  const picture = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": "Requests per day by modality; the table below has each day's numbers",
  });
  [...days.entries()].forEach(([day, count], i) => {
    let y = height;
    for (const modality of MODALITIES) {
      if (!count[modality]) continue;
      const h = (count[modality] / peak) * height;
      y -= h;
      const rect = svg("rect", { x: i * bar + 1, y, width: Math.max(bar - 2, 1), height: h, class: `${modality}-bar` });
      rect.append(svg("title", {}, `${day}: ${count[modality]} ${modality}`));
      picture.append(rect);
    }
  });
  const first = days.keys().next().value;
  return [
    el("div", { className: "legend" }, MODALITIES.map((m) => el("span", {}, el("span", { className: `swatch ${m}` }), m)), el("span", { className: "peak" }, `highest: ${peak} a day`)),
    picture,
    el("div", { className: "axis-labels", attrs: { "aria-hidden": "true" } }, el("span", {}, dayLabel(first, today)), el("span", {}, dayLabel(today, today))),
  ];
}

/** The chart's numbers as a table: each day with requests, newest first. */
function dayRows(days, today) {
  const rows = [...days.entries()].reverse().filter(([, c]) => c.chat + c.image + c.video > 0);
  return rows.map(([day, c]) =>
    el("tr", {}, el("th", { scope: "row" }, dayLabel(day, today)), el("td", {}, c.chat), el("td", {}, c.image), el("td", {}, c.video), el("td", {}, c.chat + c.image + c.video)),
  );
}

function totals(usage) {
  const t = usage.totals;
  const items = [
    ["Requests", t.requests],
    ["Errors", t.errors],
    ["Tokens", t.promptTokens + t.completionTokens],
    ["Images", t.images],
    ["Video seconds", t.videoSeconds],
  ];
  return items.map(([name, value]) => el("div", {}, el("dt", {}, name), el("dd", {}, value.toLocaleString())));
}

function usageRows(usage, names) {
  const rows = new Map();
  for (const row of usage.data) {
    const id = `${row.keyId} ${row.model}`;
    const sum = rows.get(id) || { keyId: row.keyId, model: row.model, requests: 0, errors: 0, tokens: 0, images: 0, videoSeconds: 0 };
    sum.requests += row.requests;
    sum.errors += row.errors;
    sum.tokens += row.promptTokens + row.completionTokens;
    sum.images += row.images;
    sum.videoSeconds += row.videoSeconds;
    rows.set(id, sum);
  }
  return [...rows.values()].sort((a, b) => b.requests - a.requests).map((r) =>
    el("tr", {}, el("td", {}, keyLabel(names, r.keyId)), el("td", {}, r.model || "(none)"), el("td", {}, r.requests), el("td", {}, r.errors), el("td", {}, r.tokens), el("td", {}, r.images), el("td", {}, r.videoSeconds)),
  );
}

/**
 * Read and draw the last 30 days once the keys are in (a row names its key). Answers the key
 * names it knows (revoked keys' too) and the models used, for the activity section's filters.
 * `failed(node, error)` reports an error.
 */
export async function showUsage(token, keysLoaded, failed) {
  const note = $("usage-status");
  $("usage-csv").onclick = () => download(`/api/usage?days=${DAYS}&format=csv`, token, "cloudgpt-usage.csv").catch((error) => failed(note, error));
  let usage;
  try {
    usage = await (await api(`/api/usage?days=${DAYS}`, { token })).json();
  } catch (error) {
    for (const id of ["usage-body", "usage-csv"]) $(id).classList.add("hidden");
    if (error instanceof ApiError && error.status === 404) {
      say(note, "Usage per day is not available on this server yet; each key's last use is in the list above.");
      note.classList.add("muted");
    } else failed(note, error);
    return { names: keyNames(await keysLoaded), models: new Set() };
  }
  const names = keyNames(await keysLoaded, usage.revokedKeys);
  const days = perDay(usage);
  $("usage-totals").replaceChildren(...totals(usage));
  $("usage-chart").replaceChildren(...chart(days, usage.to));
  $("usage-days").tBodies[0].replaceChildren(...dayRows(days, usage.to));
  const rows = usageRows(usage, names);
  $("usage-table").tBodies[0].replaceChildren(...rows);
  for (const id of ["usage-body", "usage-csv"]) $(id).classList.toggle("hidden", rows.length === 0);
  say(note, rows.length ? `${usage.from} to ${usage.to} (UTC).` : "No requests in the last 30 days.");
  note.classList.add("muted");
  return { names, models: new Set(usage.data.map((row) => row.model).filter(Boolean)) };
}
