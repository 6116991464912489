// /models: the catalog from GET /api/models, searched and filtered by modality and provider;
// each model leads into the playground, and names its fallback.
import { el, models, say } from "/assets/common.js";

const search = document.getElementById("search");
const modality = document.getElementById("modality");
const provider = document.getElementById("provider");
const count = document.getElementById("count");
const catalog = document.getElementById("catalog");
let all = [];

function options(select, values) {
  for (const value of [...new Set(values)].sort()) select.append(el("option", { value }, value));
}

function card(model) {
  const size = model.contextWindow
    ? `${model.contextWindow.toLocaleString()} tokens of context`
    : model.maxDuration
      ? `clips up to ${model.maxDuration} s`
      : "";
  const fallback = model.fallback && all.find((m) => m.id === model.fallback);
  const link = el("a", { href: `/playground?model=${encodeURIComponent(model.id)}` }, "Try in the playground");
  link.setAttribute("aria-label", `Try ${model.name || model.id} in the playground`);
  return el(
    "li",
    { attrs: { "data-model": model.id } },
    el("h2", {}, model.name || model.id),
    el("p", { className: "meta" }, el("span", { className: "badge" }, model.modality), `${model.provider} · `, el("code", {}, model.id)),
    model.description ? el("p", {}, model.description) : null,
    size ? el("p", { className: "meta" }, size) : null,
    model.fallback
      ? el("p", { className: "meta fallback" }, "Falls back to ", el("code", {}, model.fallback), fallback ? ` (${fallback.provider})` : "", " when its provider fails.")
      : null,
    el("p", {}, link),
  );
}

function matches(model, words) {
  const text = [model.id, model.name, model.provider, model.modality, model.description].join(" ").toLowerCase();
  return words.every((word) => text.includes(word));
}

function render() {
  const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = all.filter(
    (m) => (!modality.value || m.modality === modality.value) && (!provider.value || m.provider === provider.value) && matches(m, words),
  );
  catalog.replaceChildren(...shown.map(card));
  say(count, shown.length ? `${shown.length} of ${all.length} models` : `No model matches; ${all.length} in all.`);
}

async function start() {
  try {
    all = await models();
  } catch (error) {
    say(count, `The catalog could not be loaded: ${error.message}`, "error");
    return;
  }
  options(modality, all.map((m) => m.modality));
  options(provider, all.map((m) => m.provider));
  modality.addEventListener("change", render);
  provider.addEventListener("change", render);
  search.addEventListener("input", render);
  document.getElementById("filters").addEventListener("submit", (event) => event.preventDefault());
  render();
}

start();
