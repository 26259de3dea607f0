// The real Supabase JavaScript clients against postgrest-auth, driven by tests/test_supabase_js.py.
//
//   node flows.mjs <scenario> <base URL> [anon key]
//
// Prints one JSON object a line: {"step": name} as each check passes, {"ask": {...}} when it
// needs a mail the test reads from its SMTP server (the answer comes back as one JSON line on
// stdin), and {"done": true} at the end. Any failed check exits non-zero with the reason.

import readline from 'node:readline'
import { GoTrueClient, AuthWeakPasswordError } from '@supabase/auth-js'
import { createClient } from '@supabase/supabase-js'

const [scenario, base, anonKey = 'anon-key-is-not-checked-by-the-auth-service'] =
  process.argv.slice(2)
const authUrl = `${base}/auth/v1`
const PASSWORD = 'correct horse battery'
const answers = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]()

function say(message) {
  process.stdout.write(JSON.stringify(message) + '\n')
}

function check(condition, message, detail) {
  if (!condition) {
    throw new Error(`${message}${detail === undefined ? '' : ': ' + JSON.stringify(detail)}`)
  }
}

async function ask(question) {
  say({ ask: question })
  const { value, done } = await answers.next()
  check(!done, 'the test closed stdin', question)
  return JSON.parse(value)
}

// The mail's 6-digit code and link, as its recipient reads them.
function mail(email, type, count = 1) {
  return ask({ mail: email, type, count })
}

function memoryStorage() {
  const items = new Map()
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  }
}

function client(options = {}) {
  return new GoTrueClient({
    url: authUrl,
    headers: { apikey: anonKey },
    storage: memoryStorage(),
    autoRefreshToken: false,
    persistSession: true,
    ...options,
  })
}

function ok({ data, error }, what) {
  check(!error, `${what} failed`, error && { code: error.code, status: error.status, message: error.message })
  return data
}

function refused({ data, error }, what, status, code) {
  check(error, `${what} should have been refused`, data)
  check(error.status === status && error.code === code, `${what}: wrong refusal`, {
    status: error.status,
    code: error.code,
    message: error.message,
  })
  return error
}

// GoTrue's 403 session_not_found, as auth-js shows it: AuthSessionMissingError, the local
// session dropped.
function sessionGone({ data, error }, what) {
  check(error && error.name === 'AuthSessionMissingError', `${what}: the session should be gone`, { data, error })
}

async function signedIn(email, password = PASSWORD) {
  const c = client()
  ok(await c.signInWithPassword({ email, password }), `signInWithPassword ${email}`)
  return c
}

const scenarios = {
  // signUp to signOut, recovery and sign-in codes from real mail, PKCE, typed errors.
  async flows() {
    const alice = client()
    const signedUp = ok(
      await alice.signUp({ email: 'alice@example.com', password: PASSWORD, options: { data: { name: 'Alice' } } }),
      'signUp',
    )
    check(signedUp.session && signedUp.user.user_metadata.name === 'Alice', 'signUp session', signedUp)
    const { user } = ok(await alice.getUser(), 'getUser')
    check(user.email === 'alice@example.com' && user.id === signedUp.user.id, 'getUser user', user)
    say({ step: 'signUp, getUser' })

    refused(await client().signUp({ email: 'alice@example.com', password: PASSWORD }), 'second signUp', 422, 'user_already_exists')
    refused(await client().signInWithPassword({ email: 'alice@example.com', password: 'wrong password' }), 'wrong password', 400, 'invalid_credentials')
    const weak = refused(await client().signUp({ email: 'weak@example.com', password: 'short' }), 'weak password', 422, 'weak_password')
    check(weak instanceof AuthWeakPasswordError && weak.reasons.length > 0, 'AuthWeakPasswordError with reasons', weak)
    say({ step: 'error codes: user_already_exists, invalid_credentials, weak_password' })

    const other = await signedIn('alice@example.com')
    const updated = ok(await alice.updateUser({ data: { team: 'red' } }), 'updateUser data')
    check(updated.user.user_metadata.team === 'red' && updated.user.user_metadata.name === 'Alice', 'merged data', updated.user)
    ok(await alice.updateUser({ password: 'a new long password' }), 'updateUser password')
    ok(await alice.getUser(), 'getUser after the password change')  // this session goes on
    sessionGone(await other.getUser(), 'another session after the password change')
    ok(await alice.updateUser({ email: 'alice@corp.example' }), 'updateUser email')
    check((await alice.getUser()).data.user.email === 'alice@corp.example', 'email changed')
    await signedIn('alice@corp.example', 'a new long password')
    say({ step: 'updateUser data, password, email' })

    const before = ok(await alice.getSession(), 'getSession').session
    const refreshed = ok(await alice.refreshSession(), 'refreshSession').session
    check(refreshed.refresh_token !== before.refresh_token, 'refresh token rotated')
    check(refreshed.access_token !== before.access_token, 'new access token')
    ok(await alice.getUser(), 'getUser with the refreshed token')
    say({ step: 'refreshSession rotates' })

    ok(await client().resetPasswordForEmail('alice@corp.example'), 'resetPasswordForEmail')
    const recovery = await mail('alice@corp.example', 'recovery')
    const recovering = client()
    ok(await recovering.verifyOtp({ email: 'alice@corp.example', token: recovery.code, type: 'recovery' }), 'verifyOtp recovery')
    ok(await recovering.updateUser({ password: 'recovered password' }), 'updateUser after recovery')
    await signedIn('alice@corp.example', 'recovered password')
    say({ step: 'resetPasswordForEmail, verifyOtp(recovery), updateUser(password)' })

    ok(await client().signInWithOtp({ email: 'alice@corp.example', options: { shouldCreateUser: false } }), 'signInWithOtp')
    const code = await mail('alice@corp.example', 'magiclink')
    const byCode = client()
    const verified = ok(await byCode.verifyOtp({ email: 'alice@corp.example', token: code.code, type: 'email' }), 'verifyOtp email')
    check(verified.session && verified.user.email === 'alice@corp.example', 'a session from the code', verified)
    say({ step: 'signInWithOtp, verifyOtp(email)' })

    const pkce = client({ flowType: 'pkce' })
    ok(await pkce.signInWithOtp({ email: 'alice@corp.example', options: { shouldCreateUser: false, emailRedirectTo: 'http://app.test:5173/welcome' } }), 'signInWithOtp (pkce)')
    const link = await mail('alice@corp.example', 'magiclink', 2)
    const opened = await fetch(link.link, { redirect: 'manual' })
    check(opened.status === 303, 'the link redirects', opened.status)
    const location = new URL(opened.headers.get('location'))
    check(location.origin === 'http://app.test:5173' && !location.hash, 'code in the query, no session in the URL', location.href)
    const exchanged = ok(await pkce.exchangeCodeForSession(location.searchParams.get('code')), 'exchangeCodeForSession')
    check(exchanged.session && exchanged.user.email === 'alice@corp.example', 'a session from the code', exchanged)
    say({ step: 'PKCE: signInWithOtp, the mailed link, exchangeCodeForSession' })

    const a = await signedIn('alice@corp.example', 'recovered password')
    const b = await signedIn('alice@corp.example', 'recovered password')
    ok(await a.signOut({ scope: 'others' }), 'signOut others')
    ok(await a.getUser(), 'the caller after signOut others')
    sessionGone(await b.getUser(), 'another session after signOut others')
    const c = await signedIn('alice@corp.example', 'recovered password')
    ok(await a.signOut({ scope: 'local' }), 'signOut local')
    check(!(await a.getSession()).data.session, 'no local session after signOut local')
    ok(await c.getUser(), 'a later session survives signOut local')
    const d = await signedIn('alice@corp.example', 'recovered password')
    ok(await d.signOut(), 'signOut (global)')
    sessionGone(await c.getUser(), 'any session after signOut global')
    say({ step: 'signOut local, global, others' })
  },

  // email.confirm on: sign-up answers a user and no session until the address is confirmed.
  async confirm() {
    const carol = client()
    const signedUp = ok(await carol.signUp({ email: 'carol@example.com', password: PASSWORD }), 'signUp')
    check(!signedUp.session && signedUp.user.email === 'carol@example.com', 'a user without a session', signedUp)
    refused(await client().signInWithPassword({ email: 'carol@example.com', password: PASSWORD }), 'sign-in before confirming', 400, 'email_not_confirmed')
    const confirmation = await mail('carol@example.com', 'signup')
    ok(await carol.verifyOtp({ email: 'carol@example.com', token: confirmation.code, type: 'signup' }), 'verifyOtp signup')
    await signedIn('carol@example.com')
    say({ step: 'email_not_confirmed until verifyOtp(signup)' })
  },

  // RS256: getClaims verifies the token against the JWKS, without asking the server.
  async claims() {
    const dave = client()
    ok(await dave.signUp({ email: 'dave@example.com', password: PASSWORD }), 'signUp')
    const { claims, header } = ok(await dave.getClaims(), 'getClaims')
    check(header.alg === 'RS256' && header.kid, 'an RS256 token with a kid', header)
    check(claims.email === 'dave@example.com' && claims.aud === 'authenticated', 'claims', claims)
    check(claims.session_id && claims.aal === 'aal1' && claims.amr[0].method === 'password', 'GoTrue claims', claims)
    say({ step: 'getClaims (RS256, JWKS)' })
  },

  // supabase-js: auth and the to-do table through PostgREST with row-level security, refreshing
  // on its own (access tokens here live 60 s, inside auth-js's 90 s margin).
  async todos() {
    const events = []
    // the example schema PostgREST serves is `api` (supabase-js asks for `public` by default)
    const supabase = createClient(base, anonKey, {
      db: { schema: 'api' },
      auth: { storage: memoryStorage(), autoRefreshToken: false, persistSession: true },
    })
    supabase.auth.onAuthStateChange((event) => events.push(event))
    const anonymous = ok(await supabase.from('todos').select('description'), 'select, signed out')
    check(Array.isArray(anonymous) && anonymous.length === 0, 'nothing public yet', anonymous)
    const signedUp = ok(await supabase.auth.signUp({ email: 'erin@example.com', password: PASSWORD }), 'signUp')
    const first = signedUp.session
    const inserted = ok(await supabase.from('todos').insert({ description: 'write tests', public: true }).select(), 'insert')
    check(inserted[0].user_id === signedUp.user.id, 'the row belongs to the user', inserted)
    ok(await supabase.from('todos').insert({ description: 'private' }), 'insert private')
    const mine = ok(await supabase.from('todos').select('description').order('id'), 'select')
    check(mine.map((t) => t.description).join() === 'write tests,private', 'own rows', mine)
    const now = ok(await supabase.auth.getSession(), 'getSession').session
    check(now.refresh_token !== first.refresh_token && events.includes('TOKEN_REFRESHED'), 'refreshed on its own, rotating', events)
    say({ step: 'supabase-js from(todos).insert/select through PostgREST, auto-refresh' })

    const stranger = createClient(base, anonKey, {
      db: { schema: 'api' },
      auth: { storage: memoryStorage(), autoRefreshToken: false },
    })
    const publicOnly = ok(await stranger.from('todos').select('description'), 'select as a stranger')
    check(publicOnly.map((t) => t.description).join() === 'write tests', 'only the public row', publicOnly)
    ok(await supabase.auth.signOut(), 'signOut')
    const after = ok(await supabase.from('todos').select('description'), 'select after signOut')
    check(after.length === 1, 'signed out: public rows only', after)
    say({ step: 'row-level security: strangers and signed-out clients see public rows' })
  },
}

try {
  check(scenarios[scenario], `unknown scenario ${scenario}`)
  await scenarios[scenario]()
  say({ done: true })
  process.exit(0)
} catch (error) {
  process.stderr.write(`${error.stack || error}\n`)
  process.exit(1)
}
