// /playground: a chat conversation (public/assets/chat.js), images and videos, with the
// rate-limit headers shown after each call. It calls as the key typed in, else as the
// signed-in user (the session's own short-lived access token), else anonymously.
import { startAuth } from "/assets/auth.js";
import { chat } from "/assets/chat.js";
import { api, copy, el, limitsText, models, say, selectTab, tabs } from "/assets/common.js";
import { curlCode, KEY_VARIABLE, pythonCode } from "/assets/request-code.js";

const $ = (id) => document.getElementById(id);
const select = $("model");
const status = $("status");
const limits = $("limits");
const forms = { chat: $("chat"), image: $("image"), video: $("video") };
let catalog = [];
let config = { baseUrl: `${location.origin}/v1`, limits: {} };
let session = null; // {token, who} of the signed-in user, or null
let language = "curl";

function token() {
  return $("apikey").value.trim() || (session ? session.token : undefined);
}

function chosen() {
  return catalog.find((m) => m.id === select.value);
}

function limit(kind) {
  const model = chosen();
  const modality = model ? model.modality : "chat";
  const limits = config.limits && config.limits[modality];
  return limits ? `${limits[kind]} ${modality} requests per minute` : "";
}

/** Who the calls count as, in words, with the way to a higher limit. */
function showCaller() {
  const dashboard = el("a", { href: "/dashboard" }, "dashboard");
  let words;
  if ($("apikey").value.trim()) words = ["Calling with the key typed above: its account's limits apply. The key stays in this tab's memory only."];
  else if (session) {
    words = [`Signed in as ${session.who}: calls count as yours (${limit("authenticated")}) and appear in your usage on the `, dashboard, ". A key typed above is used instead."];
  } else {
    words = [`Anonymous: ${limit("anonymous")} from this address. Sign in on the `, dashboard, ` or type a key for ${limit("authenticated")}.`];
  }
  $("caller").replaceChildren(...words);
}

function busy(on) {
  status.closest(".statusbar").classList.toggle("live", on);
}

/** What a 429 should add: how to get a higher limit, unless the caller already has it. */
function raise429() {
  if ($("apikey").value.trim() || session) return "";
  return `Signing in (or using an API key) raises the limit to ${limit("authenticated")}.`;
}

function showForm() {
  const model = chosen();
  for (const [modality, form] of Object.entries(forms)) form.classList.toggle("hidden", !model || model.modality !== modality);
  if (model && model.maxDuration) $("duration").max = String(model.maxDuration);
  showCaller();
  showCode();
}

/** After a media call: its rate-limit headers, or the failure in words (a 429 with when to retry). */
function report(response, error) {
  const answer = response || (error && error.response);
  limits.textContent = answer ? limitsText(answer) : "";
  if (!error) return;
  const id = answer && answer.headers.get("X-Request-Id");
  const more = error.status === 429 ? raise429() : "";
  say(status, [error.message, more, id ? `Request ${id}.` : ""].filter(Boolean).join(" "), "error");
}

// ---- the conversation as code ----

const conversation = chat({
  status,
  limits,
  credential: token,
  model: chosen,
  find: (id) => catalog.find((m) => m.id === id),
  raise429,
  changed: () => showCode(),
  busy,
});

const CODE = { curl: curlCode, Python: pythonCode };

function showCode() {
  if ($("code").classList.contains("hidden")) return;
  const body = conversation.request($("prompt").value.trim() ? $("prompt").value : "");
  $("request-code").textContent = CODE[language](config.baseUrl, body);
  $("code-note").textContent =
    `The exact request of this conversation${$("prompt").value.trim() ? ", with the message in the box as the next turn" : ""}. ` +
    `It reads your key from ${KEY_VARIABLE}: export ${KEY_VARIABLE}=cgpt_… first (a key from the dashboard); the page's own sign-in is not in it.`;
  selectTab($("code-tabs"), language);
}

function codeControls() {
  tabs($("code-tabs"), Object.keys(CODE), (name) => {
    language = name;
    showCode();
  });
  $("view-code").addEventListener("click", () => {
    const open = $("code").classList.toggle("hidden") === false;
    $("view-code").setAttribute("aria-expanded", String(open));
    $("view-code").textContent = open ? "Hide code" : "View code";
    showCode();
  });
  $("copy-code").addEventListener("click", (event) => copy($("request-code").textContent, event.currentTarget));
  for (const id of ["system", "temperature", "max-tokens", "prompt"]) $(id).addEventListener("input", showCode);
}

// ---- images and videos ----

function number(id) {
  const value = $(id).value.trim();
  return value === "" ? undefined : Number(value);
}

async function media(event, path, body, target, kind) {
  event.preventDefault();
  const button = event.target.querySelector("button[type=submit]");
  button.disabled = true;
  busy(true);
  say(status, kind === "image" ? "Generating the image…" : "Generating the clip (this can take minutes)…");
  try {
    const response = await api(path, { token: token(), json: body });
    report(response);
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const old = target.querySelector("[src]");
    if (old) URL.revokeObjectURL(old.src);
    const extension = (blob.type.split("/")[1] || "bin").replace("jpeg", "jpg");
    const element =
      kind === "image"
        ? el("img", { src: url, alt: `Generated: ${body.prompt}` })
        : el("video", { src: url, controls: true, autoplay: true, muted: true, loop: true, playsInline: true });
    target.replaceChildren(
      element,
      el(
        "p",
        { className: "row" },
        el("span", { className: "caption muted grow" }, `${blob.type}, ${blob.size.toLocaleString("en")} bytes`),
        el("a", { href: url, download: `cloudgpt-${kind}.${extension}`, className: "button secondary" }, "Download"),
      ),
    );
    say(status, "Done.", "ok");
  } catch (error) {
    report(null, error);
  } finally {
    busy(false);
    button.disabled = false;
  }
}

async function start() {
  codeControls();
  forms.image.addEventListener("submit", (event) =>
    media(
      event,
      "/api/image",
      { model: select.value, prompt: $("image-prompt").value, width: number("width"), height: number("height"), seed: number("seed") },
      $("picture"),
      "image",
    ),
  );
  forms.video.addEventListener("submit", (event) =>
    media(event, "/api/video", { model: select.value, prompt: $("video-prompt").value, duration: number("duration") }, $("clip"), "video"),
  );
  select.addEventListener("change", showForm);
  $("apikey").addEventListener("input", showCaller);
  try {
    const [loaded, answer] = await Promise.all([models(), api("/api/config")]);
    catalog = loaded;
    config = { ...config, ...(await answer.json()) };
  } catch (error) {
    say(status, `The models could not be loaded: ${error.message}`, "error");
    return;
  }
  const groups = ["chat", "image", "video"].map((modality) =>
    el(
      "optgroup",
      { label: modality },
      catalog.filter((m) => m.modality === modality).map((m) => el("option", { value: m.id }, `${m.name || m.id} (${m.provider})`)),
    ),
  );
  select.replaceChildren(...groups);
  const wanted = new URLSearchParams(location.search).get("model");
  if (wanted && catalog.some((m) => m.id === wanted)) select.value = wanted;
  showForm();
  let told;
  const known = new Promise((resolve) => (told = resolve)); // the first word on the session
  try {
    await startAuth(config, (signedIn) => {
      session = signedIn;
      showCaller();
      told();
    });
    await Promise.race([known, new Promise((resolve) => setTimeout(resolve, 5000))]);
  } catch {
    session = null; // the sign-in library did not load: anonymous, or a typed key
  }
  select.disabled = false;
}

start();
