// /models: the catalog from GET /api/models, filtered by modality and provider.
import { el, models, say } from "/assets/common.js";

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
  return el(
    "li",
    { attrs: { "data-model": model.id } },
    el("h2", {}, model.name || model.id),
    el("p", { className: "meta" }, el("span", { className: "badge" }, model.modality), `${model.provider} · `, el("code", {}, model.id)),
    model.description ? el("p", {}, model.description) : null,
    size ? el("p", { className: "meta" }, size) : null,
  );
}

function render() {
  const shown = all.filter(
    (m) => (!modality.value || m.modality === modality.value) && (!provider.value || m.provider === provider.value),
  );
  catalog.replaceChildren(...shown.map(card));
  say(count, `${shown.length} of ${all.length} models`);
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
  render();
}

start();
