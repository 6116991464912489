// Who is signed in, on the dashboard and the playground, in the mode GET /api/config names:
// - "supabase": Supabase Auth through the vendored supabase-js (which keeps its own session,
//   shared by the browser's tabs); signing out ends it at the gateway and at Supabase Auth;
// - "local": the one-use sign-in link `make dev` prints; its token is kept in localStorage,
//   shared by this origin's tabs until it expires or one of them signs out (which ends it on
//   the server too), never in a URL;
// - "none": accounts are not configured here.
import { api } from "/assets/common.js";

const LOCAL_SESSION = "cloudgpt.local-session";

/** Load public/vendor/supabase.js (same origin) once, only when Supabase is the mode. */
function loadSupabase() {
  if (window.supabase) return Promise.resolve(window.supabase);
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = "/vendor/supabase.js";
    script.onload = () => resolve(window.supabase);
    script.onerror = () => reject(new Error("The sign-in library could not be loaded."));
    document.head.append(script);
  });
}

/** DELETE /api/session: the gateway refuses this token from then on (already ended or unreachable: fine). */
const endAtGateway = (token) => api("/api/session", { method: "DELETE", token }).catch(() => {});

/** The local session this browser keeps, while it has not expired. */
function savedLocal() {
  try {
    const saved = JSON.parse(localStorage.getItem(LOCAL_SESSION) || "null");
    if (saved && saved.token && saved.expiresAt > Date.now() / 1000 + 5) return saved;
  } catch {
    // unreadable: signed out
  }
  localStorage.removeItem(LOCAL_SESSION);
  return null;
}

/** The local operator's session: from a `#code=` link (on load or pasted later), else the browser's. */
async function localAuth(onChange, onNotice) {
  let current = savedLocal();
  const tell = () => onChange(current ? { token: current.token, who: "the local operator" } : null);

  /** Sign in with the `#code=` in the address, if any; what to tell the person, or null. */
  async function redeem() {
    const code = new URLSearchParams(location.hash.slice(1)).get("code");
    if (!code) return null;
    history.replaceState(null, "", location.pathname + location.search); // the code leaves the address bar
    try {
      const session = await (await api("/api/session", { json: { code } })).json();
      if (current) endAtGateway(current.token); // replaced: the old session ends
      current = { token: session.accessToken, expiresAt: session.expiresAt };
      localStorage.setItem(LOCAL_SESSION, JSON.stringify(current));
      return null;
    } catch (error) {
      if (error.code === "invalid_code" && current) {
        return ["That sign-in link was already used or has expired. You are still signed in.", ""];
      }
      return [error.message, "error"];
    }
  }
  async function follow() {
    const notice = await redeem();
    tell();
    if (notice) onNotice(...notice);
  }

  window.addEventListener("hashchange", follow); // a link pasted into this tab
  window.addEventListener("storage", (event) => {
    if (event.key !== LOCAL_SESSION && event.key !== null) return; // another tab signed in or out
    current = savedLocal();
    tell();
  });
  await follow();
  return {
    mode: "local",
    async signOut() {
      const ending = current;
      current = null;
      localStorage.removeItem(LOCAL_SESSION);
      tell();
      if (ending) await endAtGateway(ending.token);
    },
  };
}

/** Supabase Auth: supabase-js signs in and keeps the session; each change reaches onChange. */
async function supabaseAuth(config, onChange, onRecovery) {
  const library = await loadSupabase();
  const client = library.createClient(config.url, config.anonKey, {
    auth: { persistSession: true, autoRefreshToken: true, detectSessionInUrl: true },
  });
  const toSession = (session) =>
    session ? { token: session.access_token, who: (session.user && session.user.email) || "your account" } : null;
  client.auth.onAuthStateChange((event, session) => {
    if (event === "PASSWORD_RECOVERY") onRecovery();
    // Called inside supabase-js's lock: calling back into it must wait for the next turn.
    setTimeout(() => onChange(toSession(session)), 0);
  });
  const redirect = `${location.origin}/dashboard`;
  const check = ({ data, error }) => {
    if (error) throw new Error(error.message);
    return data;
  };
  return {
    mode: "supabase",
    async signIn(email, password) {
      check(await client.auth.signInWithPassword({ email, password }));
    },
    async signUp(email, password) {
      const data = check(await client.auth.signUp({ email, password, options: { emailRedirectTo: redirect } }));
      return Boolean(data.session); // false: the project asks for an email confirmation first
    },
    async magicLink(email) {
      check(await client.auth.signInWithOtp({ email, options: { emailRedirectTo: redirect } }));
    },
    async resetPassword(email) {
      check(await client.auth.resetPasswordForEmail(email, { redirectTo: redirect }));
    },
    async newPassword(password) {
      check(await client.auth.updateUser({ password }));
    },
    async oauth(provider) {
      check(await client.auth.signInWithOAuth({ provider, options: { redirectTo: redirect } }));
    },
    async signOut() {
      // The gateway first, so the token is refused before the page says signed out; another tab
      // polling in the moment before supabase-js tells it meets a 401 and signs out as well.
      const { data } = await client.auth.getSession();
      if (data.session) await endAtGateway(data.session.access_token);
      check(await client.auth.signOut({ scope: "local" })); // then at Supabase Auth: the tabs follow
    },
  };
}

/**
 * The sign-in of this deployment; onChange(session | null) on every change, session = {token, who};
 * onNotice(message, kind) for what the person should read (a used link, a failed sign-in).
 */
export async function startAuth(config, onChange, onRecovery = () => {}, onNotice = () => {}) {
  const auth = config.auth || { mode: "none" };
  if (auth.mode === "supabase" && auth.supabase) return supabaseAuth(auth.supabase, onChange, onRecovery);
  if (auth.mode === "local") return localAuth(onChange, onNotice);
  onChange(null);
  return { mode: "none" };
}
