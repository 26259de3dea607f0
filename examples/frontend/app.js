/*
 * postgrest-auth demo frontend: plain JavaScript, fetch only, no build step.
 *
 * Configuration (config.js): window.POSTGREST_AUTH_DEMO = {mode, authBase, apiBase}
 *   mode "bearer": access and refresh tokens live in variables of this file only (nothing in
 *                  localStorage, sessionStorage or cookies), sent as `Authorization: Bearer`;
 *                  a reload means logging in again.
 *   mode "cookie": postgrest-auth sets an HttpOnly session cookie; every fetch has
 *                  credentials: "include" and no Authorization header; PostgREST reads the cookie
 *                  in its pre-request. On load, GET {authBase}/user tells whether a session exists
 *                  (asked only when this page signed in before: a signed-out visitor's first load
 *                  makes no request that must fail).
 *   mode "supabase": @supabase/supabase-js (vendor/supabase.js, the UMD build `make demo` copies)
 *                  signs in through the service's GoTrue API ({authBase}/v1) and reads and writes
 *                  the to-dos through PostgREST at /rest/v1; it keeps the session in localStorage
 *                  and refreshes it itself. config.anonKey is the key it sends when signed out.
 *
 * Stable hooks for browser tests:
 *   #message            status / error line (data-kind="info" | "error"; hidden when empty)
 *   #current-user       "Signed in as <name>" or "Not signed in"
 *   #logout, #logout-all          buttons, shown when signed in
 *   #signup-username, #signup-password, #signup-email, #signup-submit
 *   #login-username, #login-password, #login-submit
 *   #forgot-username, #forgot-submit
 *   #providers > button.provider[data-provider]   "Sign in with …", one per configured provider
 *   #reset-panel (shown for #reset_token=...&username=...), #reset-username, #reset-new,
 *   #reset-confirm, #reset-submit, #reset-cancel
 *   #change-username (hidden, for password managers), #change-current, #change-new,
 *   #change-confirm, #change-submit   (in #account-panel)
 *   #todo-new, #todo-add           (form #todo-form, shown when signed in)
 *   #todo-list > li.todo-item      data-id, data-public="true|false", data-own="true|false";
 *                                  inside: .todo-description, .todo-owner, input.toggle-done (own),
 *                                  button.make-public (own private items), .badge-public
 *   #signed-out, #account-panel, #todos-panel      sections
 *   document.body.dataset.state    "signed-in" | "signed-out" (set once the page has settled)
 */
(function () {
  "use strict";

  const config = Object.assign(
    { mode: "bearer", authBase: "/auth", apiBase: "/api" },
    window.POSTGREST_AUTH_DEMO || {}
  );
  const cookieMode = config.mode === "cookie";
  const supabaseMode = config.mode === "supabase";
  let sb = null; // the supabase-js client, in supabase mode
  // Cookie mode: set while this page holds a session, so a fresh visitor is not probed. Not a
  // secret and not a credential: the HttpOnly cookie alone signs requests in.
  const SIGNED_IN_HINT = "postgrest-auth-demo:signed-in";
  const authBase = config.authBase.replace(/\/$/, "");
  const apiBase = config.apiBase.replace(/\/$/, "");

  // Session state: memory only.
  let accessToken = null; // bearer mode
  let refreshToken = null; // bearer mode, when the service issues one
  let refreshTimer = null;
  let refreshing = null; // the refresh in flight, shared by concurrent callers
  let user = null; // {id, username, email?} once signed in
  let userNames = new Map(); // user id -> username, for public to-dos of others
  let resetToken = null; // from a password-reset link, memory only

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- messages

  const FIELD_LABELS = {
    username: "Username",
    password: "Password",
    email: "Email",
    current_password: "Current password",
    new_password: "New password",
    new_password_confirm: "Password confirmation",
    reset_token: "Reset link",
    refresh_token: "Session",
    description: "To-do",
  };

  function showMessage(text, kind) {
    const el = $("message");
    el.textContent = text || "";
    el.dataset.kind = kind || "info";
    el.hidden = !text;
  }
  const showError = (err) => showMessage(err instanceof HttpError ? err.friendly : friendlyNetworkError(err), "error");
  const showInfo = (text) => showMessage(text, "info");

  function friendlyNetworkError(err) {
    console.error(err);
    return "Could not reach the server. Check your connection and try again.";
  }

  class HttpError extends Error {
    constructor(status, body, response) {
      super("HTTP " + status);
      this.status = status;
      this.body = body;
      this.code = body && typeof body === "object" ? body.code : undefined;
      this.friendly = describeError(status, body, response);
    }
  }

  // Seconds from a Retry-After header (seconds or an HTTP date), or null.
  function retryAfter(response) {
    const value = response && response.headers.get("Retry-After");
    if (!value) return null;
    if (/^\d+$/.test(value.trim())) return Number(value);
    const date = Date.parse(value);
    return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
  }

  function waitPhrase(seconds) {
    if (seconds === null) return "in a moment";
    if (seconds <= 1) return "in a second";
    if (seconds < 90) return `in ${seconds} seconds`;
    return `in about ${Math.round(seconds / 60)} minutes`;
  }

  // Turns an error answer of postgrest-auth, PostgREST or nginx into a sentence for a person.
  function describeError(status, body, response) {
    const data = body && typeof body === "object" ? body : {};
    const code = typeof data.code === "string" ? data.code : "";

    if (status === 429) {
      return `Too many attempts. Please wait and try again ${waitPhrase(retryAfter(response))}.`;
    }
    if (status === 502 || status === 503 || status === 504) {
      return `The service is temporarily unavailable. Please try again ${waitPhrase(retryAfter(response))}.`;
    }

    // postgrest-auth: {status, statusText, code, message, errors: [{field, location, messages}]}
    const fieldProblems = Array.isArray(data.errors)
      ? data.errors.flatMap((e) => {
          const label = FIELD_LABELS[e && e.field] || (e && e.field ? String(e.field).replace(/_/g, " ") : "");
          const messages = Array.isArray(e && e.messages) ? e.messages : [];
          return messages.map((m) => sentence(label ? `${label}: ${m}` : m));
        })
      : [];

    // PostgREST: {code: "42501" | "PGRST…", message, details, hint}; our pre-request: {code, message}
    const postgrest = pgrstSentence(status, code, data);
    if (postgrest) return postgrest;

    const message = typeof data.message === "string" && data.message ? sentence(data.message) : "";
    const parts = [message, ...fieldProblems.filter((p) => p !== message)].filter(Boolean);
    if (parts.length) return parts.join(" ");
    return byStatus(status);
  }

  function pgrstSentence(status, code, data) {
    const message = typeof data.message === "string" ? data.message : "";
    switch (code) {
      case "42501": // insufficient privilege
        return user ? "You are not allowed to do that." : "Please log in first.";
      case "23514": // check constraint
        return /description/.test(message)
          ? "A to-do must be between 1 and 500 characters long."
          : "That value is not allowed.";
      case "23502":
        return "Something required is missing.";
      case "23503":
        return "Your account no longer exists. Please sign up again.";
      case "PGRST301":
      case "PGRST302":
      case "token_revoked":
      case "session_ended":
      case "wrong_token_type":
      case "unknown_user":
      case "unknown_subject":
        return "Your session has ended. Please log in again.";
      case "cross_origin":
        return "That request was refused because it did not come from this page.";
    }
    if (code.startsWith("PGRST")) {
      if (status === 401) return "Your session has ended. Please log in again.";
      if (status === 404) return "That was not found.";
      return "The server could not handle that request.";
    }
    if (/^[0-9A-Z]{5}$/.test(code) && !("errors" in data)) {
      // Another database error: its message is technical, so only say what kind of problem it is.
      return byStatus(status);
    }
    return "";
  }

  function byStatus(status) {
    if (status === 400) return "Something in the form is not right. Please check it and try again.";
    if (status === 401) return "Please log in again.";
    if (status === 403) return "You are not allowed to do that.";
    if (status === 404) return "That was not found.";
    if (status === 409) return "That is already taken.";
    if (status === 413) return "That is too long.";
    if (status === 415) return "The server did not understand the request format.";
    if (status >= 500) return "Something went wrong on the server. Please try again later.";
    return `The request failed (HTTP ${status}).`;
  }

  function sentence(text) {
    const t = String(text).trim();
    if (!t) return "";
    const s = t.charAt(0).toUpperCase() + t.slice(1);
    return /[.!?]$/.test(s) ? s : s + ".";
  }

  // ---------------------------------------------------------------- HTTP

  async function send(url, { method = "GET", body, headers = {}, auth = true } = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (cookieMode) {
      init.credentials = "include";
    } else {
      init.credentials = "omit"; // bearer mode keeps nothing in cookies
      if (auth && accessToken) init.headers.Authorization = "Bearer " + accessToken;
    }
    const response = await fetch(url, init);
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null; // an HTML error page from a proxy, say
      }
    }
    if (!response.ok) throw new HttpError(response.status, data, response);
    return data;
  }

  const authCall = (path, options) => send(authBase + path, options);

  // PostgREST call; a 401 while signed in gets one refresh and one retry.
  async function apiCall(path, options) {
    try {
      return await send(apiBase + path, options);
    } catch (err) {
      if (!(err instanceof HttpError) || err.status !== 401 || !user) throw err;
      const renewed = await refreshSession();
      if (renewed === false) {
        // The 401 was described while still signed in (an ended cookie session reaches PostgREST
        // as anonymous: 42501, "not allowed"); the caller shows err.friendly, so say what happened.
        err.friendly = "Your session has ended. Please log in again.";
        signedOut(err.friendly);
      }
      if (!renewed) throw err;
      return send(apiBase + path, options);
    }
  }

  // ---------------------------------------------------------------- session

  // Takes the answer of /users, /login, /refresh_token or /change_password.
  function adoptTokens(data) {
    if (cookieMode || !data) return scheduleRefresh(data && data.expires_in);
    if (data.access_token) accessToken = data.access_token;
    if (data.refresh_token) refreshToken = data.refresh_token;
    scheduleRefresh(data.expires_in || secondsLeft(accessToken));
  }

  function secondsLeft(token) {
    const claims = token ? decodeClaims(token) : null;
    return claims && claims.exp ? claims.exp - Math.floor(Date.now() / 1000) : null;
  }

  // Refresh about 60 s before the access token runs out.
  function scheduleRefresh(expiresIn) {
    clearTimeout(refreshTimer);
    refreshTimer = null;
    if (!expiresIn || expiresIn <= 0) return;
    const seconds = expiresIn > 120 ? expiresIn - 60 : expiresIn / 2;
    const delay = Math.min(Math.max(seconds, 5) * 1000, 2147483647); // setTimeout's ceiling
    refreshTimer = setTimeout(async () => {
      const renewed = await refreshSession();
      if (renewed === null) scheduleRefresh(60); // unreachable: try again in 30 s
      else if (!renewed) signedOut("Your session has ended. Please log in again.");
    }, delay);
  }

  // Resolves true when the session was renewed, false when it has ended, null when the server
  // could not be reached (or was unavailable) and the session may still be alive.
  function refreshSession() {
    if (!refreshing) {
      refreshing = renew().finally(() => {
        refreshing = null;
      });
    }
    return refreshing;
  }

  async function renew() {
    let data;
    try {
      if (cookieMode) {
        data = await authCall("/refresh_token", { method: "POST", body: {} });
      } else if (refreshToken) {
        data = await authCall("/refresh_token", { method: "POST", body: { refresh_token: refreshToken }, auth: false });
      } else if (accessToken) {
        // No refresh token issued: the original's way, a still-valid access token buys a new one.
        data = await authCall("/refresh_token", { method: "POST", body: {} });
      } else {
        return false;
      }
    } catch (err) {
      if (err instanceof HttpError && err.status < 500 && err.status !== 429) return false;
      if (!(err instanceof HttpError)) console.error(err);
      return null;
    }
    adoptTokens(data);
    return true;
  }

  function forgetSession() {
    if (cookieMode) localStorage.removeItem(SIGNED_IN_HINT);
    clearTimeout(refreshTimer);
    refreshTimer = null;
    accessToken = null;
    refreshToken = null;
    user = null;
    userNames = new Map();
  }

  // After a token answer: find out who we are, then show the signed-in page.
  async function signedIn(data) {
    adoptTokens(data);
    try {
      user = asUser(await authCall("/user"));
    } catch (err) {
      // Fall back on the token's claims when /user cannot answer.
      const claims = accessToken ? decodeClaims(accessToken) : null;
      if (!claims) throw err;
      user = asUser({ id: claims.sub, username: claims.username });
    }
    render();
    await loadTodos();
  }

  // The id (a UUID) as a string, to compare with todos.user_id. An account made by a provider
  // has no username: its address names it.
  function asUser(data) {
    return { ...data, id: String(data.id), username: data.username || data.email || "you" };
  }

  // The payload of a JWT, read only to learn its expiry or, as a fallback, the username.
  function decodeClaims(token) {
    try {
      return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    } catch (_) {
      return null;
    }
  }

  function signedOut(text, kind) {
    forgetSession();
    render();
    renderTodos([]); // drop the private list at once; the public one follows
    loadTodos().catch(() => {});
    if (text) showMessage(text, kind || "error");
  }

  // ---------------------------------------------------------------- rendering

  function render() {
    const signedInNow = Boolean(user);
    if (cookieMode && signedInNow) localStorage.setItem(SIGNED_IN_HINT, "1");
    $("change-username").value = signedInNow ? user.username : "";
    document.body.dataset.state = signedInNow ? "signed-in" : "signed-out";
    $("current-user").textContent = signedInNow ? `Signed in as ${user.username}` : "Not signed in";
    $("logout").hidden = !signedInNow;
    $("logout-all").hidden = !signedInNow;
    $("signed-out").hidden = signedInNow || resetToken !== null; // a reset link has the stage
    $("account-panel").hidden = !signedInNow;
    $("todo-form").hidden = !signedInNow;
  }

  function renderTodos(todos) {
    const list = $("todo-list");
    list.replaceChildren();
    for (const todo of todos) {
      const own = Boolean(user) && todo.user_id === user.id;
      const li = document.createElement("li");
      li.className = "todo-item";
      li.dataset.id = String(todo.id);
      li.dataset.public = String(Boolean(todo.public));
      li.dataset.own = String(own);

      if (own) {
        const box = document.createElement("input");
        box.type = "checkbox";
        box.className = "toggle-done";
        box.checked = Boolean(todo.done);
        box.setAttribute("aria-label", "Done");
        box.addEventListener("change", () => updateTodo(todo.id, { done: box.checked }));
        li.append(box);
      }

      const text = document.createElement("span");
      text.className = "todo-description";
      if (todo.done) text.classList.add("done");
      text.textContent = todo.description; // textContent: descriptions are never HTML
      li.append(text);

      const ownerName = own ? null : userNames.get(todo.user_id);
      if (ownerName) {
        // A name only when one is known: an internal id tells a person nothing.
        const owner = document.createElement("span");
        owner.className = "todo-owner";
        owner.textContent = "by " + ownerName;
        li.append(owner);
      }

      if (todo.public) {
        const badge = document.createElement("span");
        badge.className = "badge-public";
        badge.textContent = "public";
        li.append(badge);
      } else if (own) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "make-public secondary";
        button.textContent = "Make public";
        button.addEventListener("click", () => updateTodo(todo.id, { public: true }, "The to-do is now public."));
        li.append(button);
      }
      list.append(li);
    }
    $("todo-empty").hidden = todos.length > 0;
  }

  // ---------------------------------------------------------------- to-dos

  async function loadTodos() {
    const [todos, users] = await Promise.all([
      sb ? supabaseResult(sb.from("todos").select("*").order("id")) : apiCall("/todos?order=id"),
      // Names for other people's public to-dos; only signed-in users may read them.
      user ? listUsers().catch(() => null) : Promise.resolve(null),
    ]);
    if (Array.isArray(users)) userNames = new Map(users.map((u) => [u.id, u.display_name]));
    renderTodos(Array.isArray(todos) ? todos : []);
  }

  function listUsers() {
    return sb
      ? supabaseResult(sb.from("users").select("id,display_name"))
      : send(apiBase + "/users?select=id,display_name");
  }

  async function updateTodo(id, changes, doneText) {
    try {
      if (sb) {
        await supabaseResult(sb.from("todos").update(changes).eq("id", id));
      } else {
        await apiCall(`/todos?id=eq.${encodeURIComponent(id)}`, {
          method: "PATCH",
          body: changes,
          headers: { Prefer: "return=representation" },
        });
      }
      await loadTodos();
      if (doneText) showInfo(doneText);
    } catch (err) {
      showError(err);
      loadTodos().catch(() => {});
    }
  }

  // ---------------------------------------------------------------- forms

  // Runs a form's action with its submit button disabled; errors end up in #message.
  function onSubmit(formId, action) {
    const form = $(formId);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      showMessage(""); // an old message would read as the answer to this submission
      const buttons = form.querySelectorAll("button");
      buttons.forEach((b) => (b.disabled = true));
      try {
        await action(form);
      } catch (err) {
        showError(err);
      } finally {
        buttons.forEach((b) => (b.disabled = false));
      }
    });
  }

  const value = (id) => $(id).value;

  onSubmit("signup-form", async (form) => {
    const body = { username: value("signup-username").trim(), password: value("signup-password") };
    const email = value("signup-email").trim();
    if (sb) {
      const options = { data: { username: body.username } };
      const data = await supabaseResult(sb.auth.signUp({ email, password: body.password, options }));
      form.reset();
      await supabaseSignedIn(data.user);
      showInfo(`Welcome, ${user.username}! Your account is ready.`);
      return;
    }
    if (email) body.email = email;
    const data = await authCall("/users", { method: "POST", body, auth: false });
    form.reset();
    await signedIn(data);
    showInfo(`Welcome, ${user.username}! Your account is ready.`);
  });

  onSubmit("login-form", async (form) => {
    const body = { username: value("login-username").trim(), password: value("login-password") };
    if (sb) {
      const credentials = { email: body.username, password: body.password };
      const data = await supabaseResult(sb.auth.signInWithPassword(credentials));
      form.reset();
      await supabaseSignedIn(data.user);
      showInfo(`Welcome back, ${user.username}.`);
      return;
    }
    const data = await authCall("/login", { method: "POST", body, auth: false });
    form.reset();
    await signedIn(data);
    showInfo(`Welcome back, ${user.username}.`);
  });

  onSubmit("forgot-form", async (form) => {
    if (sb) {
      // The mailed link comes back here signed in (supabase-js reads the URL fragment); the
      // change-password form then sets the new password.
      await supabaseResult(sb.auth.resetPasswordForEmail(value("forgot-username").trim()));
      form.reset();
      showInfo("If that address has an account, a link to sign in and choose a new password is on its way.");
      return;
    }
    await authCall("/forgot_password", { method: "POST", body: { username: value("forgot-username").trim() }, auth: false });
    form.reset();
    showInfo("If that account has an email address, a link to reset the password is on its way.");
  });

  onSubmit("change-form", async (form) => {
    if (value("change-new") !== value("change-confirm")) {
      showMessage("The new passwords do not match.", "error");
      return;
    }
    if (sb) {
      // GoTrue's way: the session proves who it is (it must be under a day old).
      await supabaseResult(sb.auth.updateUser({ password: value("change-new") }));
      form.reset();
      showInfo("Password changed. You have been signed out on your other devices.");
      return;
    }
    const data = await authCall("/change_password", {
      method: "POST",
      body: {
        username: user.username,
        current_password: value("change-current"),
        new_password: value("change-new"),
        new_password_confirm: value("change-confirm"),
      },
    });
    form.reset();
    adoptTokens(data);
    showInfo("Password changed. You have been signed out on your other devices.");
  });

  onSubmit("todo-form", async (form) => {
    const description = value("todo-new").trim();
    if (!description) return;
    if (sb) {
      await supabaseResult(sb.from("todos").insert({ description }));
    } else {
      await apiCall("/todos", {
        method: "POST",
        body: { description },
        headers: { Prefer: "return=representation" },
      });
    }
    form.reset();
    await loadTodos();
    $("todo-new").focus();
  });

  async function logout(scope) {
    if (sb) {
      const { error } = await sb.auth.signOut({ scope: scope === "global" ? "global" : "local" });
      signedOut(scope === "global" ? "You are logged out on all your devices." : "You are logged out.", "info");
      if (error && error.name !== "AuthSessionMissingError") showError(supabaseError(error));
      return;
    }
    try {
      await authCall("/logout", { method: "POST", body: scope ? { scope } : {} });
      signedOut(scope === "global" ? "You are logged out on all your devices." : "You are logged out.", "info");
    } catch (err) {
      // The session is forgotten here whatever the server said.
      signedOut(err instanceof HttpError && err.status === 401 ? "You are logged out." : null, "info");
      if (!(err instanceof HttpError && err.status === 401)) showError(err);
    }
  }
  $("logout").addEventListener("click", () => logout(null));
  $("logout-all").addEventListener("click", () => logout("global"));

  // ---------------------------------------------------------------- password reset links

  // A reset link looks like https://site/#reset_token=...&username=... : the token sits in the
  // fragment, which browsers never send to a server, and is wiped from the address bar at once.
  function takeResetLink() {
    if (!location.hash.includes("reset_token=")) return false;
    const params = new URLSearchParams(location.hash.slice(1));
    history.replaceState(null, "", location.pathname + location.search);
    const token = params.get("reset_token");
    if (!token) return false;
    resetToken = token;
    $("reset-username").value = params.get("username") || "";
    $("reset-panel").hidden = false;
    render();
    $((params.get("username") ? "reset-new" : "reset-username")).focus();
    showInfo("Choose a new password for your account.");
    return true;
  }

  function closeReset() {
    resetToken = null;
    $("reset-form").reset();
    $("reset-panel").hidden = true;
    render();
  }

  onSubmit("reset-form", async () => {
    if (value("reset-new") !== value("reset-confirm")) {
      showMessage("The new passwords do not match.", "error");
      return;
    }
    const data = await authCall("/change_password", {
      method: "POST",
      auth: false,
      body: {
        username: value("reset-username").trim(),
        reset_token: resetToken,
        new_password: value("reset-new"),
        new_password_confirm: value("reset-confirm"),
      },
    });
    closeReset();
    forgetSession();
    try {
      // The answer carries an access token (bearer mode), or the service set a session cookie.
      if (!cookieMode && !(data && data.access_token)) throw new Error("no token");
      await signedIn(data);
      showInfo("Your password has been changed and you are signed in.");
    } catch (_) {
      signedOut("Your password has been changed. Log in with the new one.", "info");
    }
  });
  $("reset-cancel").addEventListener("click", () => {
    closeReset();
    showMessage("");
  });
  window.addEventListener("hashchange", takeResetLink);

  // ---------------------------------------------------------------- supabase-js mode

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = () => reject(new Error(`${src} is missing: run \`make demo\``));
      document.head.append(script);
    });
  }

  async function startSupabase() {
    await loadScript("vendor/supabase.js");
    sb = window.supabase.createClient(location.origin, config.anonKey, {
      db: { schema: "api" }, // the schema PostgREST serves here
      auth: { storageKey: "postgrest-auth-demo", persistSession: true, autoRefreshToken: true },
    });
    sb.auth.onAuthStateChange((event, session) => {
      // Another tab signed out, or the session ended on the server: follow along.
      if (event === "SIGNED_OUT" && user) signedOut("Your session has ended. Please log in again.");
      // A mailed link (recovery, sign-in) was opened: supabase-js took the session from the URL.
      if ((event === "SIGNED_IN" || event === "PASSWORD_RECOVERY") && session && !user) {
        setTimeout(() => user || supabaseSignedIn(session.user).catch(showError), 0);
      }
    });
    // GoTrue accounts sign in by email; a new password needs only this (recent) session.
    $("signup-email").required = true;
    document.querySelector('label[for="signup-email"] .hint').textContent = "(you log in with it)";
    $("forgot-username").type = "email";
    document.querySelector('label[for="forgot-username"]').textContent = "Email";
    document.querySelector('label[for="login-username"]').textContent = "Email";
    for (const el of [$("change-current"), document.querySelector('label[for="change-current"]')]) {
      el.hidden = true;
    }
    $("change-current").required = false;
    const { data } = await sb.auth.getSession();
    if (data.session) user = asSupabaseUser(data.session.user);
    render();
  }

  function asSupabaseUser(account) {
    const name = (account.user_metadata && account.user_metadata.username) || account.email;
    return { id: String(account.id), username: name, email: account.email };
  }

  async function supabaseSignedIn(account) {
    user = asSupabaseUser(account);
    render();
    await loadTodos();
  }

  // supabase-js answers {data, error} instead of throwing: errors become HttpErrors, so the
  // messages read as in the other modes.
  async function supabaseResult(pending) {
    const { data, error } = await pending;
    if (error) throw supabaseError(error);
    return data;
  }

  function supabaseError(error) {
    const status = typeof error.status === "number" ? error.status : 400;
    return new HttpError(status, { code: error.code || "", message: error.message || "" }, null);
  }

  // ---------------------------------------------------------------- external providers

  // One "Sign in with …" button per provider the service has (GET {authBase}/providers). The
  // browser leaves for the provider and comes back to this page: with the session in the URL
  // fragment (bearer mode), with the session cookie set (cookie mode), or picked up by
  // supabase-js; a refusal comes back as ?error=…&error_description=….
  async function showProviders() {
    const { providers } = await authCall("/providers", { auth: false });
    const box = $("providers");
    box.replaceChildren(
      ...providers.map(({ name, display_name: label }) => {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "provider secondary";
        button.dataset.provider = name;
        button.textContent = `Sign in with ${label}`;
        button.addEventListener("click", () => signInWith(name).catch(showError));
        return button;
      })
    );
    box.hidden = providers.length === 0;
  }

  async function signInWith(provider) {
    const back = location.origin + location.pathname;
    if (supabaseMode) {
      await supabaseResult(sb.auth.signInWithOAuth({ provider, options: { redirectTo: back } }));
      return;
    }
    if (cookieMode) localStorage.setItem(SIGNED_IN_HINT, "1"); // back signed in, we expect
    const query = new URLSearchParams({ provider, redirect_to: back });
    location.assign(`${authBase}/authorize?${query}`);
  }

  // Back from a provider: an error in the query, or (bearer mode) the session in the fragment;
  // both are wiped from the address bar at once.
  async function takeProviderReturn() {
    const query = new URLSearchParams(location.search);
    if (query.has("error")) {
      history.replaceState(null, "", location.pathname);
      showMessage(sentence(query.get("error_description") || query.get("error")), "error");
      return;
    }
    if (cookieMode || supabaseMode || !location.hash.includes("access_token=")) return;
    const fragment = new URLSearchParams(location.hash.slice(1));
    history.replaceState(null, "", location.pathname + location.search);
    await signedIn({
      access_token: fragment.get("access_token"),
      refresh_token: fragment.get("refresh_token"),
      expires_in: Number(fragment.get("expires_in")),
    });
  }

  // ---------------------------------------------------------------- start

  async function start() {
    $("mode-note").textContent = supabaseMode
      ? "supabase-js mode: @supabase/supabase-js keeps the session in this browser's storage and refreshes it."
      : cookieMode
        ? "Session mode: an HttpOnly cookie keeps you signed in across reloads."
        : "Token mode: tokens are kept in memory only, so reloading the page signs you out.";
    render();
    takeResetLink();
    try {
      await showProviders();
      await takeProviderReturn();
    } catch (err) {
      showError(err);
    }
    if (supabaseMode) {
      try {
        await startSupabase();
      } catch (err) {
        showError(err);
      }
    }
    if (cookieMode && localStorage.getItem(SIGNED_IN_HINT)) {
      try {
        user = asUser(await authCall("/user"));
      } catch (err) {
        user = null;
        // The session ended while the page was closed: drop the hint, so later loads do not ask.
        if (err instanceof HttpError && err.status === 401) localStorage.removeItem(SIGNED_IN_HINT);
        else showError(err);
      }
      render();
    }
    try {
      await loadTodos();
    } catch (err) {
      showError(err);
    }
    document.body.dataset.ready = "true";
  }

  start();
})();
