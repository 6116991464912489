// /playground: chat (rendered as the stream arrives, stoppable), images and videos,
// with the rate-limit headers shown after each call. Anonymous unless a key is given.
import { api, el, limitsText, models, say } from "/assets/common.js";

const $ = (id) => document.getElementById(id);
const select = $("model");
const status = $("status");
const limits = $("limits");
const forms = { chat: $("chat"), image: $("image"), video: $("video") };
let catalog = [];
let running = null; // the AbortController of the chat request in flight

function token() {
  return $("apikey").value.trim() || undefined;
}

function chosen() {
  return catalog.find((m) => m.id === select.value);
}

function showForm() {
  const model = chosen();
  for (const [modality, form] of Object.entries(forms)) form.classList.toggle("hidden", !model || model.modality !== modality);
  if (model && model.maxDuration) $("duration").max = String(model.maxDuration);
}

/** After a call: its rate-limit headers, or the failure in words (a 429 with when to retry). */
function report(response, error) {
  const answer = response || (error && error.response);
  limits.textContent = answer ? limitsText(answer) : "";
  if (error) say(status, error.message, "error");
}

async function call(path, body, signal) {
  const response = await api(path, { token: token(), json: body, signal });
  report(response);
  return response;
}

/** Each `data:` payload of a server-sent event stream, as it arrives. */
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (data) yield data;
    }
  }
}

async function chat(event) {
  event.preventDefault();
  const prompt = $("prompt").value;
  if (!prompt.trim()) return;
  const answer = $("answer");
  const text = document.createTextNode("");
  answer.replaceChildren(text);
  running = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  say(status, "Streaming…");
  let finished = false;
  try {
    const body = { model: select.value, stream: true, messages: [{ role: "user", content: prompt }] };
    const response = await call("/api/chat", body, running.signal);
    for await (const data of events(response)) {
      if (data === "[DONE]") {
        finished = true;
        break;
      }
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(`The answer broke off: ${chunk.error.message}`);
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && typeof delta.content === "string") text.appendData(delta.content);
    }
    say(status, finished ? "Done." : "The answer ended early (no end marker).", finished ? "ok" : "error");
  } catch (error) {
    if (error.name === "AbortError") say(status, "Stopped.");
    else report(null, error);
  } finally {
    running = null;
    $("send").disabled = false;
    $("stop").disabled = true;
  }
}

function number(id) {
  const value = $(id).value.trim();
  return value === "" ? undefined : Number(value);
}

async function media(event, path, body, target, kind) {
  event.preventDefault();
  const button = event.target.querySelector("button[type=submit]");
  button.disabled = true;
  say(status, kind === "image" ? "Generating the image…" : "Generating the clip (this can take minutes)…");
  try {
    const response = await call(path, body);
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
    button.disabled = false;
  }
}

async function start() {
  forms.chat.addEventListener("submit", chat);
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      forms.chat.requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => running && running.abort());
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
  try {
    catalog = await models();
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
  select.disabled = false;
  showForm();
}

start();
