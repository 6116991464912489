// /dashboard: sign in, then API keys (create, shown once, copy, revoke), quick connect
// snippets, usage (usage.js) and activity (activity.js). Every key call carries the account's access token, never a key.
import { showActivity } from "/assets/activity.js";
import { startAuth } from "/assets/auth.js";
import { ApiError, api, copy, el, say, selectTab, stackTables, tabs, when } from "/assets/common.js";
import { editButton, explain, fields, read, summary } from "/assets/key-controls.js";
import { showUsage } from "/assets/usage.js";

const $ = (id) => document.getElementById(id);
const status = $("status");
const keysStatus = $("keys-status");
let auth = null;
let token = null;
let config = { maxKeys: 25, baseUrl: `${location.origin}/v1` };
let keys = [];
let language = "curl";
let loading = Promise.resolve(); // the signed-in view's first loads: sign-out lets them end first

function show(id, visible) {
  $(id).classList.toggle("hidden", !visible);
}

function failed(node, error) {
  if (error instanceof ApiError && error.status === 401 && token) {
    say(status, "Your session has ended. Sign in again.", "error");
    if (auth && auth.signOut) auth.signOut().catch(() => {});
    return;
  }
  say(node, error.message, "error");
}

// ---- signed in / out ----

async function onSession(session) {
  if (session && session.token === token) return; // the same session told again (supabase-js events)
  const arriving = session && !token;
  token = session ? session.token : null;
  show("signed-out", !session);
  show("signed-in", Boolean(session));
  if (!session) {
    keys = [];
    $("new-key-value").textContent = "";
    show("new-key", false);
    return;
  }
  $("who").textContent = session.who;
  if (arriving) say(status, "");
  const keysLoaded = loadKeys().then(() => keys);
  loading = (async () => {
    const { names, models } = await showUsage(token, keysLoaded, failed);
    await showActivity(token, names, models, failed);
  })();
  await loading;
}

function signInForms(mode, methods) {
  show("local-signin", mode === "local");
  show("no-accounts", mode === "none");
  show("password-form", mode === "supabase");
  if (mode !== "supabase") return;
  const password = methods.includes("password");
  show("password-fields", password);
  for (const id of ["sign-in", "sign-up", "reset"]) show(id, password);
  show("magic-link", methods.includes("magiclink"));
  const providers = methods.filter((m) => m !== "password" && m !== "magiclink");
  $("oauth").replaceChildren(
    ...providers.map((provider) => {
      const button = el("button", { type: "button", className: "secondary" }, `Continue with ${provider[0].toUpperCase()}${provider.slice(1)}`);
      button.addEventListener("click", () => auth.oauth(provider).catch((error) => say(status, error.message, "error")));
      return button;
    }),
  );
}

async function passwordSubmit(event) {
  event.preventDefault();
  const action = (event.submitter && event.submitter.value) || "signin";
  const email = $("email").value.trim();
  const password = $("password").value;
  if (!email || !$("email").checkValidity()) {
    say(status, "Enter your email address.", "error");
    $("email").focus();
    return;
  }
  if ((action === "signin" || action === "signup") && password.length < 6) {
    say(status, "Enter your password (at least 6 characters).", "error");
    $("password").focus();
    return;
  }
  try {
    if (action === "signin") {
      say(status, "Signing in…");
      await auth.signIn(email, password);
    } else if (action === "signup") {
      say(status, "Creating your account…");
      const signedIn = await auth.signUp(email, password);
      if (!signedIn) say(status, `Check your email: we sent a confirmation link to ${email}.`, "ok");
    } else if (action === "magiclink") {
      await auth.magicLink(email);
      say(status, `Check your email: we sent a sign-in link to ${email}.`, "ok");
    } else if (action === "reset") {
      await auth.resetPassword(email);
      say(status, `If ${email} has an account, a password reset link is on its way.`, "ok");
    }
  } catch (error) {
    say(status, error.message, "error");
  }
}

async function recoverySubmit(event) {
  event.preventDefault();
  try {
    await auth.newPassword($("new-password").value);
    show("recovery-form", false);
    say(status, "Your password is changed.", "ok");
  } catch (error) {
    say(status, error.message, "error");
  }
}

// ---- keys ----

async function loadKeys() {
  try {
    const response = await api("/api/keys", { token });
    keys = (await response.json()).data;
    renderKeys();
  } catch (error) {
    failed(keysStatus, error);
  }
}

function renderKeys() {
  const rows = keys.map((key) => {
    const revoke = el("button", { type: "button", className: "danger" }, "Revoke");
    const cancel = el("button", { type: "button", className: "secondary hidden" }, "Cancel");
    revoke.setAttribute("aria-label", `Revoke ${key.name}`);
    revoke.addEventListener("click", () => {
      if (!revoke.classList.contains("confirm")) {
        revoke.classList.add("confirm");
        revoke.textContent = "Confirm revoke";
        cancel.classList.remove("hidden");
        say(keysStatus, `Revoke “${key.name}”? Programs using it stop working within a second. Confirm or cancel.`);
        revoke.focus();
        return;
      }
      revokeKey(key);
    });
    cancel.addEventListener("click", () => {
      revoke.classList.remove("confirm");
      revoke.textContent = "Revoke";
      cancel.classList.add("hidden");
      say(keysStatus, "");
      revoke.focus();
    });
    return el(
      "tr",
      { attrs: { "data-key-id": key.id } },
      el("td", { className: "key-name" }, key.name),
      el("td", {}, el("code", {}, key.prefix)),
      el("td", { className: "date" }, when(key.created)),
      el("td", { className: "date" }, when(key.lastUsed)),
      el("td", { className: "key-controls" }, summary(key)),
      el("td", { className: "actions-cell" }, editButton(key, { token, status: keysStatus, failed, saved: loadKeys }), " ", revoke, " ", cancel),
    );
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 6, className: "muted" }, "No keys yet: create one above.")));
  $("keys").tBodies[0].replaceChildren(...rows);
  const max = config.maxKeys || 25;
  $("create").disabled = keys.length >= max;
  if (keys.length >= max) say(keysStatus, `You have ${max} keys, the most an account can have. Revoke one to create another.`, "error");
  else if (!keysStatus.classList.contains("error") && !keysStatus.textContent.startsWith("Revoke")) say(keysStatus, `${keys.length} of ${max} keys.`);
  renderSnippet();
}

async function createKey(event) {
  event.preventDefault();
  const name = $("key-name").value.trim();
  const controls = $("create-controls").querySelector("fieldset");
  say(keysStatus, "Creating…");
  try {
    const response = await api("/api/keys", { token, json: { ...(name ? { name } : {}), ...read(controls) } });
    const created = await response.json();
    $("new-key-value").textContent = created.key;
    show("new-key", true);
    $("key-name").value = "";
    controls.replaceWith(fields("new"));
    say(keysStatus, "");
    await loadKeys(); // quick connect shows the new key
    $("copy-key").focus();
  } catch (error) {
    if (!explain(controls, keysStatus, error)) failed(keysStatus, error);
  }
}

async function revokeKey(key) {
  try {
    await api(`/api/keys/${encodeURIComponent(key.id)}`, { token, method: "DELETE" });
    say(keysStatus, `Revoked “${key.name}”. It stops working on every server within a second.`, "ok");
    await loadKeys();
  } catch (error) {
    failed(keysStatus, error);
  }
}

// ---- quick connect ----
// A snippet runs as copied: it holds the new key while that is on screen, and otherwise
// reads CLOUDGPT_API_KEY from the environment (the note under it says how to set it).

const ENV = "CLOUDGPT_API_KEY";
const SNIPPETS = {
  curl: (base, key) => `curl ${base}/chat/completions \\
  -H "Authorization: Bearer ${key || `$${ENV}`}" \\
  -H "Content-Type: application/json" \\
  -d '{"model": "openai", "messages": [{"role": "user", "content": "Hello!"}]}'`,
  Python: (base, key) => `${key ? "" : "import os\n\n"}from openai import OpenAI

client = OpenAI(base_url="${base}", api_key=${key ? `"${key}"` : `os.environ["${ENV}"]`})
reply = client.chat.completions.create(
    model="openai", messages=[{"role": "user", "content": "Hello!"}]
)
print(reply.choices[0].message.content)`,
  JavaScript: (base, key) => `import OpenAI from "openai";

const client = new OpenAI({ baseURL: "${base}", apiKey: ${key ? `"${key}"` : `process.env.${ENV}`} });
const reply = await client.chat.completions.create({
  model: "openai",
  messages: [{ role: "user", content: "Hello!" }],
});
console.log(reply.choices[0].message.content);`,
  httpx: (base, key) => `${key ? "" : "import os\n\n"}import httpx

reply = httpx.post(
    "${base}/chat/completions",
    headers={"Authorization": ${key ? `"Bearer ${key}"` : `f"Bearer {os.environ['${ENV}']}"`}},
    json={"model": "openai", "messages": [{"role": "user", "content": "Hello!"}]},
    timeout=300,
)
print(reply.json()["choices"][0]["message"]["content"])`,
};

function renderSnippet() {
  const key = $("new-key-value").textContent; // on screen only until "Done"
  $("base-url").textContent = config.baseUrl;
  $("snippet").textContent = SNIPPETS[language](config.baseUrl, key);
  $("snippet-note").textContent = key
    ? "This snippet holds your new key and runs as copied. Keep it secret; once you press Done, snippets read the key from CLOUDGPT_API_KEY instead."
    : `This snippet reads your key from the environment variable ${ENV}. Set it first, with the key you copied when you created it: export ${ENV}=cgpt_… (PowerShell: $env:${ENV} = "cgpt_…").`;
  selectTab($("snippet-tabs"), language);
}

function snippetTabs() {
  tabs($("snippet-tabs"), Object.keys(SNIPPETS), (name) => {
    language = name;
    renderSnippet();
  });
}

// ---- start ----

async function start() {
  stackTables(document);
  $("password-form").addEventListener("submit", passwordSubmit);
  $("recovery-form").addEventListener("submit", recoverySubmit);
  $("create-controls").append(fields("new"));
  $("create-form").addEventListener("submit", createKey);
  $("copy-key").addEventListener("click", (event) => copy($("new-key-value").textContent, event.currentTarget));
  $("hide-key").addEventListener("click", () => {
    $("new-key-value").textContent = "";
    show("new-key", false);
    renderSnippet();
    $("key-name").focus();
  });
  $("copy-snippet").addEventListener("click", (event) => copy($("snippet").textContent, event.currentTarget));
  $("sign-out").addEventListener("click", async () => {
    // A load still on its way would meet the ended session (a 401); two seconds at most.
    await Promise.race([loading.catch(() => {}), new Promise((done) => setTimeout(done, 2000))]);
    auth.signOut().catch((error) => say(status, error.message, "error"));
  });
  snippetTabs();
  try {
    const response = await api("/api/config");
    config = { ...config, ...(await response.json()) };
  } catch (error) {
    say(status, `This server's settings could not be loaded: ${error.message}`, "error");
    return;
  }
  const mode = (config.auth && config.auth.mode) || "none";
  signInForms(mode, (config.auth && config.auth.methods) || []);
  say(status, "");
  try {
    auth = await startAuth(
      config,
      onSession,
      () => {
        show("recovery-form", true); // the reset link signed the person in; the password is next
        $("new-password").focus();
      },
      (message, kind) => say(status, message, kind),
    );
  } catch (error) {
    show("signed-out", true);
    say(status, error.message, "error");
  }
}

start();
