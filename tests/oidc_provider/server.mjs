// A real OpenID Provider for the tests (panva's oidc-provider, pinned in package-lock.json):
// `node server.mjs <config.json>`, driven by tests/oidc_support.py.
//
// config.json: {port, issuer, clients: [{client_id, client_secret, redirect_uris}],
//               accounts: [{id, email, email_verified, name}], exit_with_stdin (default true)}
//
// Authorization code flow with PKCE S256 required for every client, the built-in development
// login and consent pages (devInteractions: any password; the login is an account's id or
// email), an RS256 key made at start, plain http on loopback. Prints "ready" once listening.
//
// Test hook, never for production: POST /test/tamper {"id_token": "signature" | "none"}; with
// "signature" the token endpoint answers id_tokens whose signature is broken.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider from 'oidc-provider';

// The provider's warnings about its quick-start parts (in-memory adapter, devInteractions) are
// what this stand-in wants; keep stderr for real trouble.
const quiet = /development-only|default [\w.]+ function called|already parsed request body/;
for (const level of ['warn', 'info']) {
  const original = console[level].bind(console);
  console[level] = (...args) => {
    if (typeof args[0] === 'string' && quiet.test(args[0])) return;
    original(...args);
  };
}

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const accounts = config.accounts;

function findAccountRecord(login) {
  const wanted = String(login).toLowerCase();
  return accounts.find((a) => a.id === login)
    ?? accounts.find((a) => String(a.email).toLowerCase() === wanted);
}

const signingKey = {
  ...crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid: crypto.randomBytes(8).toString('hex'),
  alg: 'RS256',
  use: 'sig',
};

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_basic',
  })),
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  conformIdTokenClaims: false,
  // Lifetimes set, as a real deployment does (the defaults print a notice each).
  ttl: {
    AccessToken: 600, AuthorizationCode: 60, Grant: 3600, IdToken: 600, Interaction: 600,
    Session: 3600,
  },
  features: { devInteractions: { enabled: true }, userinfo: { enabled: true } },
  async findAccount(_ctx, id) {
    const record = findAccountRecord(id);
    if (!record) return undefined;
    return {
      accountId: record.id,
      async claims() {
        return {
          sub: record.id,
          email: record.email,
          email_verified: record.email_verified,
          name: record.name,
        };
      },
    };
  },
});

let tamper = 'none';

function flipSignature(jwt) {
  const [header, payload, signature] = jwt.split('.');
  const bytes = Buffer.from(signature, 'base64url');
  for (let i = 0; i < 8 && i < bytes.length; i += 1) bytes[i] ^= 0xff;
  return `${header}.${payload}.${bytes.toString('base64url')}`;
}

async function readAll(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && ctx.path === '/test/tamper') {
    const body = JSON.parse((await readAll(ctx.req)) || '{}');
    if (!['signature', 'none'].includes(body.id_token)) {
      ctx.status = 400;
      ctx.body = { error: 'id_token must be "signature" or "none"' };
      return;
    }
    tamper = body.id_token;
    ctx.body = { id_token: tamper };
    return;
  }
  if (ctx.method === 'POST' && /^\/interaction\/[^/]+$/.test(ctx.path)
      && ctx.is('application/x-www-form-urlencoded')) {
    // devInteractions makes the login field the session's account id; let the form take an
    // email too, by putting the account's id in its place (the provider then reads this body).
    const form = new URLSearchParams(await readAll(ctx.req));
    if (form.get('prompt') === 'login') {
      const record = findAccountRecord(form.get('login'));
      if (!record) {
        ctx.status = 400;
        ctx.type = 'text';
        ctx.body = `no account ${JSON.stringify(form.get('login'))} at this provider; `
          + `it has ${accounts.map((a) => `${a.id} <${a.email}>`).join(', ')}`;
        return;
      }
      form.set('login', record.id);
    }
    ctx.req.body = form.toString();
  }
  await next();
  if (tamper === 'signature' && ctx.path === '/token' && ctx.body?.id_token) {
    ctx.body = { ...ctx.body, id_token: flipSignature(ctx.body.id_token) };
  }
});

const server = http.createServer(provider.callback());
server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
});

function shutDown() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, shutDown);
// The test process holds our stdin open: when it goes (even killed), so do we. The demo runs
// us in a process group of our own instead, stopped by signal.
if (config.exit_with_stdin !== false) {
  process.stdin.on('end', shutDown);
  process.stdin.on('error', shutDown);
  process.stdin.resume();
}
