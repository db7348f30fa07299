// Stand-in Pro Santé Connect for the interop tests, driven by mss-testkit's OidcProvider.
//
// Usage: node server.js CONFIG.json
// Listens on 127.0.0.1 (port chosen by the OS), writes the signing public key for Dovecot,
// prints one line `MSS {"ready":true,...}` on stdout, then answers JSON commands read from
// stdin, one per line, with one `MSS {...}` line each. Exits when stdin closes.
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { X509Certificate } from 'node:crypto';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import Provider, { errors } from 'oidc-provider';
import { generateKeyPair, exportJWK, exportSPKI } from 'jose';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const KID = 'k1';
const RESOURCE = cfg.audience;
const CIBA_GRANT = 'urn:openid:params:grant-type:ciba';

// Accounts: each has a canonical id (RPPS-like, becomes `sub`) and a mailbox address
// (`email` claim). A login hint or a typed login may be either.
const accounts = cfg.accounts;
function resolve(hint) {
  return accounts.find((a) => a.id === hint || a.email === hint);
}

// Mutable test controls (the `set_ciba` command changes them).
const ciba = {
  approveAfterMs: cfg.ciba_approve_after_ms,
  deny: new Set(cfg.ciba_deny),
};
const stats = { ciba_polls: 0, slow_downs: 0, refreshes: 0, code_exchanges: 0, backchannel_requests: 0 };
const lastPoll = new Map(); // auth_req_id -> ms timestamp
const grantsByAccount = new Map(); // canonical id -> Set(grantId)

const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: KID, alg: 'RS256', use: 'sig' };

// HTTPS (with an optional client certificate, checked against `ca`) when the test asks.
const server = cfg.tls
  ? createTlsServer({
    cert: readFileSync(cfg.tls.cert),
    key: readFileSync(cfg.tls.key),
    ca: readFileSync(cfg.tls.ca),
    requestCert: true,
    rejectUnauthorized: false,
  })
  : createServer();
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const port = server.address().port;
const issuer = `${cfg.tls ? 'https' : 'http'}://127.0.0.1:${port}`;

function peerCertificate(ctx) {
  const peer = ctx.req.socket.getPeerCertificate ? ctx.req.socket.getPeerCertificate() : undefined;
  return peer && peer.raw ? new X509Certificate(peer.raw) : undefined;
}

let provider;
provider = new Provider(issuer, {
  jwks: { keys: [jwk] },
  cookies: { keys: ['mss-test-cookie-key'] },
  clients: [{
    client_id: cfg.client_id,
    client_secret: cfg.client_secret,
    application_type: 'native', // a loopback redirect then matches any port (RFC 8252)
    redirect_uris: [`http://127.0.0.1${cfg.redirect_path}`],
    post_logout_redirect_uris: [`http://127.0.0.1${cfg.redirect_path}`],
    grant_types: ['authorization_code', 'refresh_token', CIBA_GRANT],
    response_types: ['code'],
    token_endpoint_auth_method: cfg.auth_method,
    ...(cfg.auth_method === 'tls_client_auth' ? { tls_client_auth_san_email: cfg.tls_san_email } : {}),
    backchannel_token_delivery_mode: 'poll',
    scope: 'openid scope_all email offline_access',
  }],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', ...(cfg.tls ? ['tls_client_auth'] : [])],
  pkce: { required: () => true },
  scopes: ['openid', 'scope_all', 'email', 'offline_access'],
  claims: { openid: ['sub'], scope_all: ['email'], email: ['email'] },
  acrValues: ['eidas1', 'eidas2', 'eidas3'],
  ttl: {
    AccessToken: cfg.access_token_ttl,
    RefreshToken: cfg.refresh_token_ttl,
    IdToken: cfg.access_token_ttl,
    BackchannelAuthenticationRequest: cfg.ciba_request_ttl,
    Grant: cfg.refresh_token_ttl,
    Session: cfg.refresh_token_ttl,
    Interaction: 600,
  },
  findAccount: async (ctx, id) => {
    const account = resolve(id);
    if (!account) return undefined;
    return { accountId: id, claims: async () => ({ sub: account.id, email: account.email }) };
  },
  features: {
    devInteractions: { enabled: true },
    mTLS: {
      enabled: Boolean(cfg.tls),
      tlsClientAuth: Boolean(cfg.tls),
      getCertificate: (ctx) => peerCertificate(ctx)?.toString(),
      certificateAuthorized: (ctx) => ctx.req.socket.authorized === true,
      certificateSubjectMatches: (ctx, property, expected) => property === 'tls_client_auth_san_email'
        && (peerCertificate(ctx)?.subjectAltName || '').split(', ').includes(`email:${expected}`),
    },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'scope_all',
        audience: RESOURCE,
        accessTokenTTL: cfg.access_token_ttl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
    ciba: {
      enabled: true,
      deliveryModes: ['poll'],
      processLoginHint: async (ctx, hint) => resolve(hint)?.id,
      validateBindingMessage: async () => {},
      validateRequestContext: async () => {},
      verifyUserCode: async () => {},
      triggerAuthenticationDevice: async (ctx, request, account, client) => {
        stats.backchannel_requests += 1;
        const hint = ctx.oidc.params.login_hint;
        const instant = ctx.get('x-mss-test-instant') === '1';
        const denied = ciba.deny.has(hint) || ciba.deny.has(resolve(hint)?.email);
        const answer = async () => {
          if (denied) {
            await provider.backchannelResult(request, new errors.AccessDenied('the user refused'));
            return;
          }
          const grant = new provider.Grant({ accountId: account.accountId, clientId: client.clientId });
          grant.addOIDCScope('openid scope_all email offline_access');
          grant.addResourceScope(RESOURCE, 'scope_all');
          await grant.save();
          await provider.backchannelResult(request, grant, { acr: ctx.oidc.params.acr_values });
        };
        if (instant) await answer();
        else setTimeout(() => answer().catch((e) => console.error('ciba answer failed', e)), ciba.approveAfterMs);
      },
    },
  },
  // Dovecot 2.3 validates JWTs only with header typ "JWT" (not RFC 9068's "at+jwt").
  formats: { customizers: { jwt: async (ctx, token, jwt) => { jwt.header = { ...jwt.header, typ: 'JWT' }; } } },
  extraTokenClaims: async (ctx, token) => {
    const account = token.accountId && resolve(token.accountId);
    return account ? { email: account.email, azp: token.clientId } : undefined;
  },
  // PSC (Keycloak) issues a refresh token without asking for offline_access.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
});
provider.proxy = false;

provider.on('grant.saved', (grant) => {
  const id = resolve(grant.accountId)?.id;
  if (!id) return;
  if (!grantsByAccount.has(id)) grantsByAccount.set(id, new Set());
  grantsByAccount.get(id).add(grant.jti);
});

// Reads the token request body ourselves (bounded) to count grants and to answer
// `slow_down` to a CIBA poll that comes sooner than the advertised interval.
provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && ctx.path === '/token' && ctx.is('application/x-www-form-urlencoded')) {
    const chunks = [];
    let size = 0;
    for await (const chunk of ctx.req) {
      size += chunk.length;
      if (size > 56 * 1024) { ctx.status = 413; return; }
      chunks.push(chunk);
    }
    const raw = Buffer.concat(chunks).toString('utf8');
    ctx.req.body = raw;
    const form = new URLSearchParams(raw);
    const grantType = form.get('grant_type');
    if (grantType === 'refresh_token') stats.refreshes += 1;
    if (grantType === 'authorization_code') stats.code_exchanges += 1;
    if (grantType === CIBA_GRANT) {
      stats.ciba_polls += 1;
      const id = form.get('auth_req_id') || '';
      const now = Date.now();
      const last = lastPoll.get(id);
      lastPoll.set(id, now);
      if (last !== undefined && now - last < cfg.ciba_min_gap_ms - 50) {
        stats.slow_downs += 1;
        ctx.status = 400;
        ctx.body = { error: 'slow_down', error_description: 'polled sooner than the interval' };
        return;
      }
    }
  }
  await next();
  // oidc-provider leaves out `interval`; a client would then poll every 5 s (RFC default).
  if (ctx.path === '/backchannel' && ctx.status === 200 && ctx.body && ctx.body.auth_req_id) {
    ctx.body = { ...ctx.body, interval: cfg.ciba_interval };
    // The request counts as the first contact: a poll must wait the interval after it.
    if (ctx.get('x-mss-test-instant') !== '1') lastPoll.set(ctx.body.auth_req_id, Date.now());
  }
});

server.on('request', provider.callback());

// Public key for Dovecot's local validation: fs:posix:prefix=<keys_dir>/ looks up <azp>/<alg>/<kid>.
const keyDir = join(cfg.keys_dir, cfg.client_id, 'RS256');
mkdirSync(keyDir, { recursive: true });
const keyPath = join(keyDir, KID);
writeFileSync(keyPath, await exportSPKI(publicKey));

function say(obj) {
  process.stdout.write(`MSS ${JSON.stringify(obj)}\n`);
}

function basicAuth() {
  const enc = (s) => encodeURIComponent(s);
  return `Basic ${Buffer.from(`${enc(cfg.client_id)}:${enc(cfg.client_secret)}`).toString('base64')}`;
}

async function post(path, form, extra = {}) {
  const headers = { 'content-type': 'application/x-www-form-urlencoded', ...extra };
  const body = new URLSearchParams(form);
  if (cfg.auth_method === 'client_secret_post') {
    body.set('client_id', cfg.client_id);
    body.set('client_secret', cfg.client_secret);
  } else {
    headers.authorization = basicAuth();
  }
  const res = await fetch(`${issuer}${path}`, { method: 'POST', headers, body });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : {} };
}

// A token for tests that only need one: a real CIBA flow against ourselves, approved at once.
async function quickToken(hint) {
  if (cfg.tls) throw new Error('token() works only with the plain-http provider (no client certificate here)');
  const ba = await post('/backchannel', { login_hint: hint, scope: 'openid scope_all' }, { 'x-mss-test-instant': '1' });
  if (ba.status !== 200) throw new Error(`backchannel: ${JSON.stringify(ba.json)}`);
  const tok = await post('/token', { grant_type: CIBA_GRANT, auth_req_id: ba.json.auth_req_id });
  if (tok.status !== 200) throw new Error(`token: ${JSON.stringify(tok.json)}`);
  return tok.json;
}

async function revoke(hint) {
  const id = resolve(hint)?.id;
  const grants = [...(grantsByAccount.get(id) || [])];
  for (const g of grants) {
    await Promise.all([
      provider.AccessToken.revokeByGrantId(g),
      provider.RefreshToken.revokeByGrantId(g),
      provider.AuthorizationCode.revokeByGrantId(g),
    ]);
    const grant = await provider.Grant.find(g);
    if (grant) await grant.destroy();
  }
  grantsByAccount.delete(id);
  return grants.length;
}

async function handle(cmd) {
  switch (cmd.cmd) {
    case 'token': return { tokens: await quickToken(cmd.login_hint) };
    case 'revoke': return { revoked: await revoke(cmd.login_hint) };
    case 'set_ciba':
      if (cmd.approve_after_ms !== undefined) ciba.approveAfterMs = cmd.approve_after_ms;
      if (cmd.deny !== undefined) ciba.deny = new Set(cmd.deny);
      return {};
    case 'stats': return { stats };
    default: throw new Error(`unknown command ${cmd.cmd}`);
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  let id = null;
  try {
    const cmd = JSON.parse(line);
    id = cmd.id;
    say({ id, ok: true, ...(await handle(cmd)) });
  } catch (e) {
    say({ id, ok: false, error: String(e && e.message ? e.message : e) });
  }
});
rl.on('close', () => process.exit(0));

say({ ready: true, issuer, port, kid: KID, key_path: keyPath });
