// Which way the page signs in. The demo and test servers overwrite this file.
//   mode: "bearer"  tokens in JavaScript memory only, sent as Authorization: Bearer
//         "cookie"  an HttpOnly session cookie set by postgrest-auth; PostgREST reads it itself
//         "supabase" @supabase/supabase-js (vendor/supabase.js) against the GoTrue API at /auth/v1 and
//                   PostgREST at /rest/v1; anonKey is then its key for signed-out requests
//   authBase: where postgrest-auth is mounted (same origin), apiBase: where PostgREST is.
window.POSTGREST_AUTH_DEMO = { mode: "bearer", authBase: "/auth", apiBase: "/api" };
