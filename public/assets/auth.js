// Who is signed in on the dashboard, in the mode GET /api/config names:
// - "supabase": Supabase Auth through the vendored supabase-js (which keeps its own session);
// - "local": the one-use sign-in link `make dev` prints; its token lives in this tab's
//   sessionStorage only, never in localStorage or a URL;
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

/** The local operator's session: from a `#code=` link (consumed at once), else this tab's. */
async function localAuth(onChange) {
  const code = new URLSearchParams(location.hash.slice(1)).get("code");
  if (code) {
    history.replaceState(null, "", location.pathname + location.search); // the code leaves the address bar
    const response = await api("/api/session", { json: { code } });
    const session = await response.json();
    sessionStorage.setItem(LOCAL_SESSION, JSON.stringify({ token: session.accessToken, expiresAt: session.expiresAt }));
  }
  const current = () => {
    try {
      const saved = JSON.parse(sessionStorage.getItem(LOCAL_SESSION) || "null");
      if (saved && saved.expiresAt > Date.now() / 1000 + 5) return saved;
    } catch {
      // unreadable: signed out
    }
    sessionStorage.removeItem(LOCAL_SESSION);
    return null;
  };
  const saved = current();
  onChange(saved ? { token: saved.token, who: "the local operator" } : null);
  return {
    mode: "local",
    async signOut() {
      sessionStorage.removeItem(LOCAL_SESSION);
      onChange(null);
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
      check(await client.auth.signOut());
    },
  };
}

/** The sign-in of this deployment; onChange(session | null) on every change, session = {token, who}. */
export async function startAuth(config, onChange, onRecovery) {
  const auth = config.auth || { mode: "none" };
  if (auth.mode === "supabase" && auth.supabase) return supabaseAuth(auth.supabase, onChange, onRecovery);
  if (auth.mode === "local") return localAuth(onChange);
  onChange(null);
  return { mode: "none" };
}
