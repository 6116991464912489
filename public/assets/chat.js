// The playground's conversation: turns kept in the page and sent whole with the system prompt,
// temperature and max tokens; each answer streamed into the thread as it arrives, then signed
// with who answered, the tokens, the times, the request id and the rate-limit line.
import { api, el, limitsText, say } from "/assets/common.js";

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

const seconds = (ms) => `${(ms / 1000).toFixed(2)} s`;

/** Who answered: the model's provider, or its fallback's (the model's own provider having failed). */
function answeredBy(response, model, find) {
  const provider = response.headers.get("X-CloudGPT-Provider");
  if (!provider) return "";
  if (!model || provider === model.provider || !model.fallback) return `answered by ${provider}`;
  const fallback = find(model.fallback);
  return `answered by ${provider} with the fallback ${fallback ? fallback.id : model.fallback} (${model.provider} failed)`;
}

function tokens(usage) {
  if (!usage) return "tokens not reported";
  return `${usage.total_tokens} tokens (${usage.prompt_tokens} in, ${usage.completion_tokens} out)`;
}

/**
 * The chat form's behaviour. `page` gives: status, limits (elements), credential() (the bearer
 * token or undefined), model() (the chosen catalog model), find(id) (a catalog model),
 * raise429() (what would raise the limit, or ""), changed() (the conversation changed), busy(on)
 * (a call is running: keep its status in sight).
 */
export function chat(page) {
  const $ = (id) => document.getElementById(id);
  const thread = $("thread");
  let messages = []; // the turns so far: {role, content}
  let running = null; // the AbortController of the request in flight

  /** The request the conversation makes now; `next` is a message about to be added. */
  function request(next) {
    const body = { model: page.model() ? page.model().id : "", stream: true, stream_options: { include_usage: true } };
    const system = $("system").value.trim();
    body.messages = [...(system ? [{ role: "system", content: system }] : []), ...messages];
    if (next) body.messages.push({ role: "user", content: next });
    const temperature = $("temperature").value.trim();
    const maxTokens = $("max-tokens").value.trim();
    if (temperature !== "") body.temperature = Number(temperature);
    if (maxTokens !== "") body.max_tokens = Number(maxTokens);
    return body;
  }

  function turn(role, text) {
    const content = el("div", { className: "content" }, text);
    const item = el("li", { className: role }, el("span", { className: "role" }, role === "user" ? "You" : "Assistant"), content);
    thread.append(item);
    return { item, content };
  }

  async function send(event) {
    event.preventDefault();
    const prompt = $("prompt").value;
    if (!prompt.trim() || running) return;
    const body = request(prompt);
    const asked = turn("user", prompt);
    const answer = turn("assistant", "");
    const text = document.createTextNode("");
    answer.content.append(text);
    messages.push({ role: "user", content: prompt });
    $("prompt").value = "";
    page.changed();
    answer.item.scrollIntoView({ block: "nearest" });
    running = new AbortController();
    $("send").disabled = true;
    $("stop").disabled = false;
    $("stop").classList.remove("hidden"); // beside the status, in sight while the answer streams
    page.busy(true);
    say(page.status, "Streaming…");
    const started = performance.now();
    let first = 0;
    let usage = null;
    let finished = false;
    let response = null;
    let failure = null;
    try {
      response = await api("/api/chat", { token: page.credential(), json: body, signal: running.signal });
      for await (const data of events(response)) {
        if (data === "[DONE]") {
          finished = true;
          break;
        }
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(`The answer broke off: ${chunk.error.message}`);
        if (chunk.usage) usage = chunk.usage;
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && typeof delta.content === "string" && delta.content) {
          if (!first) first = performance.now();
          text.appendData(delta.content);
        }
      }
      if (!finished) failure = new Error("The answer ended early (no end marker).");
    } catch (error) {
      failure = error;
    } finally {
      running = null;
      page.busy(false);
      $("send").disabled = false;
      $("stop").disabled = true;
      $("stop").classList.add("hidden");
    }
    const total = performance.now() - started;
    const answered = response || (failure && failure.response);
    page.limits.textContent = answered ? limitsText(answered) : "";
    const id = answered && answered.headers.get("X-Request-Id");
    const stopped = failure && failure.name === "AbortError";

    if (!text.data) {
      // Nothing came back: the turn is undone and the message is back in the box, to send again.
      asked.item.remove();
      answer.item.remove();
      messages.pop();
      $("prompt").value = prompt;
      page.changed();
      if (stopped) return say(page.status, "Stopped before the answer began; your message is back in the box.");
      let message = failure ? failure.message : "The answer was empty.";
      if (failure && failure.status === 429) message = `${message} ${page.raise429()}`.trim();
      return say(page.status, `${message}${id ? ` Request ${id}.` : ""}`, "error");
    }
    messages.push({ role: "assistant", content: text.data });
    page.changed();
    const meta = [
      stopped ? "stopped" : failure ? failure.message : answeredBy(response, page.model(), page.find),
      tokens(usage),
      `first token ${seconds(first - started)}`,
      `total ${seconds(total)}`,
      id,
      page.limits.textContent,
    ].filter(Boolean);
    answer.item.append(el("p", { className: failure && !stopped ? "meta error" : "meta" }, meta.join(" · ")));
    if (stopped) say(page.status, "Stopped.");
    else if (failure) say(page.status, `${failure.message}${id ? ` Request ${id}.` : ""}`, "error");
    else say(page.status, "Done.", "ok");
  }

  function newChat() {
    if (running) running.abort();
    messages = [];
    thread.replaceChildren();
    say(page.status, "");
    page.changed();
    $("prompt").focus();
  }

  $("chat").addEventListener("submit", send);
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("chat").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => running && running.abort());
  $("new-chat").addEventListener("click", newChat);
  return { request };
}
