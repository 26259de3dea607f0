// The real Supabase JavaScript clients against postgrest-auth, driven by tests/test_supabase_js.py.
//
//   node flows.mjs <scenario> <base URL> [anon key]
//
// <base URL> is what an application gives createClient: the GoTrue API is at <base>/auth/v1 and
// PostgREST at <base>/rest/v1. Prints one JSON object a line: {"step": name} as each check
// passes, {"ask": {...}} when it needs a mail the test reads from its SMTP server (the answer
// comes back as one JSON line on stdin), and {"done": true} at the end. Any failed check exits
// non-zero with the reason on stderr.

import readline from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { GoTrueClient, AuthWeakPasswordError, isAuthApiError } from '@supabase/auth-js'
import { createClient } from '@supabase/supabase-js'

const [scenario, base, anonKey = 'anon-key-is-not-checked-by-the-auth-service'] =
  process.argv.slice(2)
const authUrl = `${base}/auth/v1`
const SITE = 'http://app.test:5173' // gotrue.site_url of the service under test
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

// The `count`-th mail of a type (the link's `type`) to an address: its 6-digit code and link,
// as its recipient reads them.
function mail(email, type, count = 1) {
  return ask({ mail: email, type, count })
}

// What a browser's localStorage is to auth-js: the session and the PKCE code verifier live here.
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
  check(!error, `${what} failed`, error && { name: error.name, code: error.code, status: error.status, message: error.message })
  return data
}

function refused({ data, error }, what, status, code) {
  check(error, `${what} should have been refused`, data)
  check(error.status === status && error.code === code, `${what}: wrong refusal`, {
    name: error.name,
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

async function signedIn(email, password) {
  const c = client()
  ok(await c.signInWithPassword({ email, password }), `signInWithPassword ${email}`)
  return c
}

// Open a mailed link as a browser does, without following the redirect: where it sends the
// browser (the application's page, with ?code= for PKCE or the session in the #fragment).
async function open(link, target) {
  const opened = await fetch(link, { redirect: 'manual' })
  check(opened.status === 303, 'the mailed link redirects', opened.status)
  const location = new URL(opened.headers.get('location'))
  check(location.origin + location.pathname === target, 'redirected to redirect_to', location.href)
  return location
}

// The code an authenticator app shows for this secret, `steps` 30-s steps from now (the test
// computes it with pyotp): each code works once, so a second verification takes the next step's.
async function totp(secret, steps = 0) {
  return (await ask({ totp: secret, steps })).code
}

// Open the URL signInWithOAuth gave (our /authorize) as the user's browser does: the test signs
// in as alice at its OpenID Provider (or presses Cancel) and follows our callback; where the
// browser lands on the application's page (with ?code= or ?error=), unrequested.
async function browse(url, cancel = false) {
  return new URL((await ask({ oauth: url, cancel })).url)
}

function decodePayload(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString())
}

const scenarios = {
  // auth-js mfa.*: enrol a TOTP factor, aal1 → aal2, the assurance levels it reads from the token
  // and the user's factors, a replayed code, recovery codes, the admin's listFactors/deleteFactor.
  async mfa() {
    const email = 'mfa@example.com'
    const c = client()
    ok(await c.signUp({ email, password: PASSWORD }), 'signUp')
    const before = ok(await c.mfa.getAuthenticatorAssuranceLevel(), 'getAuthenticatorAssuranceLevel')
    check(before.currentLevel === 'aal1' && before.nextLevel === 'aal1', 'aal1 without factors', before)
    const factor = ok(await c.mfa.enroll({ factorType: 'totp', friendlyName: 'phone' }), 'mfa.enroll')
    check(factor.type === 'totp' && factor.totp.uri.startsWith('otpauth://totp/'), 'enrolment', factor)
    check(factor.totp.qr_code.startsWith('data:image/svg+xml'), 'QR code as an SVG data URL', factor.totp.qr_code.slice(0, 40))
    say({ step: 'mfa.enroll: secret, otpauth URI, SVG QR code' })

    const code = await totp(factor.totp.secret)
    const verified = ok(await c.mfa.challengeAndVerify({ factorId: factor.id, code }), 'mfa.challengeAndVerify')
    check(decodePayload(verified.access_token).aal === 'aal2', 'aal2 token', decodePayload(verified.access_token))
    const after = ok(await c.mfa.getAuthenticatorAssuranceLevel(), 'getAuthenticatorAssuranceLevel after')
    check(after.currentLevel === 'aal2' && after.nextLevel === 'aal2', 'aal2 after verify', after)
    check(after.currentAuthenticationMethods.some((m) => m.method === 'totp'), 'totp in amr', after)
    const listed = ok(await c.mfa.listFactors(), 'mfa.listFactors')
    check(listed.totp.length === 1 && listed.totp[0].status === 'verified', 'one verified TOTP factor', listed)
    say({ step: 'mfa.challengeAndVerify: aal2, amr totp, listFactors' })

    const replay = await c.mfa.challengeAndVerify({ factorId: factor.id, code })
    refused(replay, 'a replayed code', 422, 'mfa_verification_failed')
    const other = client({ experimental: { recoveryCodes: true } })
    ok(await other.signInWithPassword({ email, password: PASSWORD }), 'a second sign-in')
    const level = ok(await other.mfa.getAuthenticatorAssuranceLevel(), 'aal of a new sign-in')
    check(level.currentLevel === 'aal1' && level.nextLevel === 'aal2', 'a new sign-in must step up', level)
    refused(await other.mfa.unenroll({ factorId: factor.id }), 'unenrol from aal1', 403, 'insufficient_aal')
    ok(await other.mfa.challengeAndVerify({ factorId: factor.id, code: await totp(factor.totp.secret, 1) }), 'verify with the next code')
    say({ step: 'replayed code refused; a new sign-in is aal1 until it verifies' })

    // (A code per 30-s step, each once: the aal2 session above makes the codes.)
    const codes = ok(await other.mfa.recoveryCodes.generate(), 'recoveryCodes.generate')
    check(codes.type === 'recovery_code' && codes.codes.length === 10, 'ten recovery codes', codes)
    const lost = client({ experimental: { recoveryCodes: true } })
    ok(await lost.signInWithPassword({ email, password: PASSWORD }), 'sign-in without the phone')
    ok(await lost.mfa.recoveryCodes.verify({ code: codes.codes[0] }), 'recoveryCodes.verify')
    const recovered = ok(await lost.mfa.getAuthenticatorAssuranceLevel(), 'aal after a recovery code')
    check(recovered.currentLevel === 'aal2', 'a recovery code gives aal2', recovered)
    const status = ok(await lost.mfa.recoveryCodes.getStatus(), 'recoveryCodes.getStatus')
    check(status.total === 10 && status.remaining === 9, 'nine left', status)
    ok(await lost.mfa.unenroll({ factorId: factor.id }), 'unenrol the lost factor from aal2')
    const none = ok(await lost.mfa.listFactors(), 'listFactors after unenrol')
    check(none.totp.length === 0, 'no TOTP factor left', none)
    say({ step: 'recovery codes: generate, verify once (aal2), unenrol the lost factor' })
  },
  // supabase-js signInWithOAuth in the PKCE flow at the test's OpenID Provider (`corp`): auth-js
  // builds our /authorize URL, the test's browser signs in there and follows our callback to the
  // application's page with ?code=, exchangeCodeForSession makes the session. Then a refusal.
  async oauth() {
    const options = { flowType: 'pkce', detectSessionInUrl: false, autoRefreshToken: false, persistSession: true }
    const supabase = createClient(base, anonKey, { auth: { ...options, storage: memoryStorage() } })
    const started = ok(
      await supabase.auth.signInWithOAuth({ provider: 'corp', options: { redirectTo: SITE, skipBrowserRedirect: true } }),
      'signInWithOAuth',
    )
    const authorize = new URL(started.url)
    const asked = Object.fromEntries(authorize.searchParams)
    check(authorize.origin + authorize.pathname === `${authUrl}/authorize`, 'our /authorize URL', started.url)
    check(asked.provider === 'corp' && asked.redirect_to === SITE, 'provider and redirect_to', asked)
    check(asked.code_challenge && asked.code_challenge_method === 's256', 'a PKCE challenge', asked)
    say({ step: 'signInWithOAuth (pkce, skipBrowserRedirect): our /authorize URL with a challenge' })

    const landed = await browse(started.url)
    check(landed.origin === SITE && !landed.hash, 'back at the application, no session in the URL', landed.href)
    const code = landed.searchParams.get('code')
    check(code && !landed.searchParams.has('error'), 'a code, no error', landed.href)
    const exchanged = ok(await supabase.auth.exchangeCodeForSession(code), 'exchangeCodeForSession')
    const { user, session } = exchanged
    check(session && user.email === 'alice@example.test' && user.email_confirmed_at, 'alice, verified', user)
    check(user.app_metadata.provider === 'corp' && user.app_metadata.providers.includes('corp'), 'app_metadata', user.app_metadata)
    check(user.identities.some((i) => i.provider === 'corp' && i.email === 'alice@example.test'), 'a corp identity', user.identities)
    const claims = decodePayload(session.access_token)
    check(claims.sub === user.id && claims.email === user.email && claims.app_metadata.provider === 'corp', 'token claims', claims)
    say({ step: 'the browser at the provider and our callback; exchangeCodeForSession: alice via corp' })

    const { identities } = ok(await supabase.auth.getUserIdentities(), 'getUserIdentities')
    check(identities.map((i) => i.provider).includes('corp'), 'getUserIdentities lists corp', identities)
    const kept = ok(await supabase.auth.getSession(), 'getSession').session
    check(kept && kept.access_token === session.access_token && kept.user.id === user.id, 'getSession has the session', kept)
    ok(await supabase.auth.getUser(), 'getUser with the session')
    say({ step: 'getUserIdentities lists corp; getSession has the session' })

    const refusing = createClient(base, anonKey, { auth: { ...options, storage: memoryStorage() } })
    const again = ok(
      await refusing.auth.signInWithOAuth({ provider: 'corp', options: { redirectTo: SITE, skipBrowserRedirect: true } }),
      'signInWithOAuth (to cancel)',
    )
    const cancelled = await browse(again.url, true)
    check(cancelled.origin === SITE && !cancelled.searchParams.has('code'), 'back at the application without a code', cancelled.href)
    check(cancelled.searchParams.get('error') === 'access_denied' && cancelled.searchParams.get('error_description'), 'access_denied with a reason', cancelled.href)
    // auth-js reads an error URL only in a browser (detectSessionInUrl); the API a Node app has
    // is the exchange, which the server refuses for a code it never issued.
    const bogus = await refusing.auth.exchangeCodeForSession('not-a-code-we-were-given')
    check(isAuthApiError(bogus.error), 'an AuthApiError for a bad code', bogus.error?.name)
    refused(bogus, 'exchangeCodeForSession with a bad code', 404, 'flow_state_not_found')
    check(!bogus.data.session && !(await refusing.auth.getSession()).data.session, 'no session after a refusal')
    say({ step: 'refusal: Cancel at the provider gives ?error=access_denied; a bad code flow_state_not_found' })
  },
  // signUp to signOut, recovery and sign-in codes and links from real mail, PKCE, typed errors.
  // The service's sessions.reuse_interval is 1 s.
  async flows() {
    let password = PASSWORD
    const alice = client()
    const signedUp = ok(
      await alice.signUp({ email: 'alice@example.com', password, options: { data: { name: 'Alice' } } }),
      'signUp',
    )
    check(signedUp.session && signedUp.user.user_metadata.name === 'Alice', 'signUp session', signedUp)
    const { user } = ok(await alice.getUser(), 'getUser')
    check(user.email === 'alice@example.com' && user.id === signedUp.user.id, 'getUser user', user)
    const { claims, header } = ok(await alice.getClaims(), 'getClaims (HS256: asks GET /user)')
    check(header.alg === 'HS256' && claims.sub === user.id && claims.email === user.email, 'HS256 claims', { header, claims })
    await signedIn('alice@example.com', password)
    say({ step: 'signUp, getUser, getClaims (HS256), signInWithPassword' })

    refused(await client().signUp({ email: 'alice@example.com', password }), 'second signUp', 422, 'user_already_exists')
    refused(await client().signInWithPassword({ email: 'alice@example.com', password: 'wrong password' }), 'wrong password', 400, 'invalid_credentials')
    const weak = refused(await client().signUp({ email: 'weak@example.com', password: 'short' }), 'weak password', 422, 'weak_password')
    check(weak instanceof AuthWeakPasswordError && weak.reasons.length > 0, 'AuthWeakPasswordError with reasons', weak)
    say({ step: 'error codes: user_already_exists, invalid_credentials, weak_password' })

    const other = await signedIn('alice@example.com', password)
    const updated = ok(await alice.updateUser({ data: { team: 'red' } }), 'updateUser data')
    check(updated.user.user_metadata.team === 'red' && updated.user.user_metadata.name === 'Alice', 'merged data', updated.user)
    password = 'a new long password'
    ok(await alice.updateUser({ password }), 'updateUser password')
    ok(await alice.getUser(), 'getUser after the password change') // this session goes on
    sessionGone(await other.getUser(), 'another session after the password change')
    ok(await alice.updateUser({ email: 'alice@corp.example' }), 'updateUser email')
    check((await alice.getUser()).data.user.email === 'alice@corp.example', 'email changed')
    await signedIn('alice@corp.example', password)
    say({ step: 'updateUser data, password, email' })

    const before = ok(await alice.getSession(), 'getSession').session
    const refreshed = ok(await alice.refreshSession(), 'refreshSession').session
    check(refreshed.refresh_token !== before.refresh_token, 'refresh token rotated')
    check(refreshed.access_token !== before.access_token, 'new access token')
    ok(await alice.getUser(), 'getUser with the refreshed token')
    // Within reuse_interval (two tabs refreshing at once) the spent token answers the current one.
    const twin = ok(await client().refreshSession({ refresh_token: before.refresh_token }), 'reuse within reuse_interval').session
    check(twin.refresh_token === refreshed.refresh_token, 'the current refresh token again')
    await sleep(1500)
    refused(await client().refreshSession({ refresh_token: before.refresh_token }), 'reuse after reuse_interval', 400, 'refresh_token_already_used')
    sessionGone(await alice.getUser(), 'the session whose spent refresh token came back')
    say({ step: 'refreshSession rotates; a spent token after reuse_interval ends the session' })

    ok(await client().resetPasswordForEmail('alice@corp.example'), 'resetPasswordForEmail')
    const recovery = await mail('alice@corp.example', 'recovery')
    const recovering = client()
    const events = []
    recovering.onAuthStateChange((event) => events.push(event))
    ok(await recovering.verifyOtp({ email: 'alice@corp.example', token: recovery.code, type: 'recovery' }), 'verifyOtp recovery')
    check(events.includes('PASSWORD_RECOVERY'), 'PASSWORD_RECOVERY event', events)
    password = 'recovered password'
    ok(await recovering.updateUser({ password }), 'updateUser after recovery')
    await signedIn('alice@corp.example', password)
    say({ step: 'resetPasswordForEmail, verifyOtp(recovery), updateUser(password)' })

    const pkceReset = client({ flowType: 'pkce' })
    const resetEvents = []
    pkceReset.onAuthStateChange((event) => resetEvents.push(event))
    ok(await pkceReset.resetPasswordForEmail('alice@corp.example', { redirectTo: `${SITE}/reset` }), 'resetPasswordForEmail (pkce)')
    const resetAt = await open((await mail('alice@corp.example', 'recovery', 2)).link, `${SITE}/reset`)
    check(resetAt.searchParams.get('code') && !resetAt.hash, 'code in the query, no session in the URL', resetAt.href)
    ok(await pkceReset.exchangeCodeForSession(resetAt.searchParams.get('code')), 'exchangeCodeForSession (recovery)')
    check(resetEvents.includes('PASSWORD_RECOVERY'), 'PASSWORD_RECOVERY event after the exchange', resetEvents)
    password = 'pkce recovered password'
    ok(await pkceReset.updateUser({ password }), 'updateUser after the PKCE recovery')
    await signedIn('alice@corp.example', password)
    say({ step: 'PKCE: resetPasswordForEmail, the mailed link, exchangeCodeForSession, updateUser(password)' })

    ok(await client().signInWithOtp({ email: 'alice@corp.example', options: { shouldCreateUser: false } }), 'signInWithOtp')
    const code = await mail('alice@corp.example', 'magiclink')
    const byCode = client()
    const verified = ok(await byCode.verifyOtp({ email: 'alice@corp.example', token: code.code, type: 'email' }), 'verifyOtp email')
    check(verified.session && verified.user.email === 'alice@corp.example', 'a session from the code', verified)
    say({ step: 'signInWithOtp, verifyOtp(email)' })

    const pkce = client({ flowType: 'pkce' })
    ok(await pkce.signInWithOtp({ email: 'alice@corp.example', options: { shouldCreateUser: false, emailRedirectTo: `${SITE}/welcome` } }), 'signInWithOtp (pkce)')
    const welcome = await open((await mail('alice@corp.example', 'magiclink', 2)).link, `${SITE}/welcome`)
    check(welcome.searchParams.get('code') && !welcome.hash, 'code in the query, no session in the URL', welcome.href)
    const exchanged = ok(await pkce.exchangeCodeForSession(welcome.searchParams.get('code')), 'exchangeCodeForSession')
    check(exchanged.session && exchanged.user.email === 'alice@corp.example', 'a session from the code', exchanged)
    ok(await pkce.getUser(), 'getUser after the exchange')
    say({ step: 'PKCE: signInWithOtp, the mailed link, exchangeCodeForSession' })

    ok(await client().signInWithOtp({ email: 'alice@corp.example', options: { shouldCreateUser: false, emailRedirectTo: `${SITE}/welcome` } }), 'signInWithOtp (implicit)')
    const landed = await open((await mail('alice@corp.example', 'magiclink', 3)).link, `${SITE}/welcome`)
    const fragment = new URLSearchParams(landed.hash.slice(1))
    check(fragment.get('access_token') && fragment.get('refresh_token') && fragment.get('expires_at'), 'the session in the fragment', [...fragment.keys()])
    const implicit = client()
    const set = ok(await implicit.setSession({ access_token: fragment.get('access_token'), refresh_token: fragment.get('refresh_token') }), 'setSession')
    check(set.session && set.user.email === 'alice@corp.example', 'setSession session', set)
    ok(await implicit.refreshSession(), 'refreshSession after setSession')
    say({ step: 'implicit: the mailed link, setSession from the fragment' })

    const a = await signedIn('alice@corp.example', password)
    const b = await signedIn('alice@corp.example', password)
    ok(await a.signOut({ scope: 'others' }), 'signOut others')
    ok(await a.getUser(), 'the caller after signOut others')
    sessionGone(await b.getUser(), 'another session after signOut others')
    const c = await signedIn('alice@corp.example', password)
    ok(await a.signOut({ scope: 'local' }), 'signOut local')
    check(!(await a.getSession()).data.session, 'no local session after signOut local')
    ok(await c.getUser(), 'a later session survives signOut local')
    const d = await signedIn('alice@corp.example', password)
    ok(await d.signOut(), 'signOut (global)')
    check(!(await d.getSession()).data.session, 'no local session after signOut global')
    sessionGone(await c.getUser(), 'any session after signOut global')
    say({ step: 'signOut local, global, others' })
  },

  // email.confirm on: sign-up answers a user and no session until the address is confirmed.
  async confirm() {
    const carol = client()
    const signedUp = ok(await carol.signUp({ email: 'carol@example.com', password: PASSWORD }), 'signUp')
    check(!signedUp.session && signedUp.user.email === 'carol@example.com', 'a user without a session', signedUp)
    refused(await client().signInWithPassword({ email: 'carol@example.com', password: PASSWORD }), 'sign-in before confirming', 400, 'email_not_confirmed')
    await mail('carol@example.com', 'signup')
    ok(await client().resend({ type: 'signup', email: 'carol@example.com' }), 'resend signup')
    const confirmation = await mail('carol@example.com', 'signup', 2)
    const confirmed = ok(await carol.verifyOtp({ email: 'carol@example.com', token: confirmation.code, type: 'signup' }), 'verifyOtp signup')
    check(confirmed.session && confirmed.user.email_confirmed_at, 'a session for a confirmed address', confirmed)
    await signedIn('carol@example.com', PASSWORD)
    say({ step: 'email_not_confirmed until verifyOtp(signup) with the resent code' })
  },

  // supabase-js at one origin: the GoTrue API and PostgREST with row-level security; RS256
  // tokens that live 3 s (auth-js refreshes 90 s ahead, so it refreshes before every request).
  async stack() {
    const events = []
    let latest = null
    const bearers = [] // the tokens supabase-js sends PostgREST, as seen on the wire
    const watched = (input, init) => {
      if (String(input.url ?? input).includes('/rest/v1/')) {
        bearers.push(new Headers(init?.headers).get('authorization')?.replace(/^Bearer /, ''))
      }
      return fetch(input, init)
    }
    // the example schema PostgREST serves is `api` (supabase-js asks for `public` by default)
    const supabase = createClient(base, anonKey, {
      db: { schema: 'api' },
      auth: { storage: memoryStorage() },
      global: { fetch: watched },
    })
    supabase.auth.onAuthStateChange((event, session) => {
      events.push(event)
      latest = session
    })
    const anonymous = ok(await supabase.from('todos').select('description'), 'select, signed out')
    check(Array.isArray(anonymous) && anonymous.length === 0, 'nothing public yet', anonymous)
    check(bearers.at(-1) === anonKey, 'the anon key as the bearer when signed out')
    const signedUp = ok(await supabase.auth.signUp({ email: 'erin@example.com', password: PASSWORD }), 'signUp')
    check(events.includes('SIGNED_IN') && latest.user.id === signedUp.user.id, 'SIGNED_IN', events)
    const inserted = ok(await supabase.from('todos').insert({ description: 'write tests', public: true }).select(), 'insert')
    check(inserted[0].user_id === signedUp.user.id, 'the row belongs to the user', inserted)
    ok(await supabase.from('todos').insert({ description: 'private' }), 'insert private')
    const mine = ok(await supabase.from('todos').select('description').order('id'), 'select')
    check(mine.map((t) => t.description).join() === 'write tests,private', 'own rows', mine)
    say({ step: 'supabase-js from(todos).insert/select through PostgREST' })

    const { claims, header } = ok(await supabase.auth.getClaims(), 'getClaims')
    check(header.alg === 'RS256' && header.kid === 'rs1', 'an RS256 token with its kid', header)
    check(claims.email === 'erin@example.com' && claims.aud === 'authenticated', 'claims', claims)
    check(claims.session_id && claims.aal === 'aal1' && claims.amr[0].method === 'password', 'GoTrue claims', claims)
    say({ step: 'getClaims (RS256, verified against the JWKS)' })

    // Let the access token expire for real, then query: the client refreshes first.
    const held = latest
    while (Date.now() <= (held.expires_at + 1) * 1000) await sleep(100)
    refused(await supabase.auth.getUser(held.access_token), 'getUser with the expired token', 403, 'bad_jwt')
    const local = await supabase.auth.getClaims(held.access_token)
    check(local.error?.name === 'AuthInvalidJwtError', 'getClaims refuses the expired token locally', local.error)
    const refreshes = events.filter((e) => e === 'TOKEN_REFRESHED').length
    const later = ok(await supabase.from('todos').select('description').order('id'), 'select after the expiry')
    check(later.length === 2, 'own rows after the expiry', later)
    const sent = bearers.at(-1)
    check(sent !== held.access_token && decodePayload(sent).exp * 1000 > Date.now(), 'a fresh token sent to PostgREST')
    check(events.filter((e) => e === 'TOKEN_REFRESHED').length > refreshes, 'TOKEN_REFRESHED', events)
    check(latest.refresh_token !== held.refresh_token && latest.access_token === sent, 'rotated refresh token in the session')
    say({ step: 'auto-refresh across an access-token expiry (rotating)' })

    const stranger = createClient(base, anonKey, { db: { schema: 'api' }, auth: { storage: memoryStorage() } })
    const publicOnly = ok(await stranger.from('todos').select('description'), 'select as a stranger')
    check(publicOnly.map((t) => t.description).join() === 'write tests', 'only the public row', publicOnly)
    ok(await supabase.auth.signOut(), 'signOut')
    check(events.at(-1) === 'SIGNED_OUT', 'SIGNED_OUT', events)
    const after = ok(await supabase.from('todos').select('description'), 'select after signOut')
    check(after.length === 1 && bearers.at(-1) === anonKey, 'signed out: public rows only, as anon', after)
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
