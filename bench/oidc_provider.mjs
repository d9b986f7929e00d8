// node's oidc-provider (the certified reference, pinned in tests/interop/package.json and installed
// into .cache/node-peers by scripts/ensure-node-peers.sh) configured like Bastion is for `make bench`
// (bench/run.py). One process, no cluster: the in-memory adapter of oidc-provider lives in it.
//
//   node bench/oidc_provider.mjs <config.json>
//
// Config file (written by bench/run.py):
//   {"port": N, "clients": [{client_id, client_secret, redirect_uris}, ...]}
// Every client: client_secret_basic; grants authorization_code, refresh_token, client_credentials;
// scope "openid profile email offline_access read write".
//
// Once listening it prints ONE JSON line on stdout: {"issuer": ..., "port": ..., "version": ...}.
//
// What matches Bastion's set-up (bench/README.md):
// - keys: RSA-2048 (RS256, first: ID tokens default to it) and P-256 (ES256);
// - resource indicators: https://api-es.example gets ES256 JWT access tokens (RFC 9068),
//   https://api-rs.example RS256 ones; no resource: an opaque access token (UserInfo's audience);
// - a refresh token on every code exchange of a client allowed the grant (Bastion:
//   refresh_token_policy=always), rotated on every use (both);
// - PKCE S256 required; lifetimes as Bastion's defaults (access token 600 s, code 60 s, ID token
//   3600 s, refresh token 14 d, grant 90 d, session 1 d, interaction 900 s);
// - a user's consent is remembered (oidc-provider's Grant, found through the session), so that a
//   second authorization with a live session answers with a code straight away, as Bastion does.
// Storage is oidc-provider's own in-memory adapter (no persistence) over an unbounded store: its
// default store is an LRU of 1,000 entries, which under a 64-connection refresh run evicted live
// refresh tokens and grants (invalid_grant in the middle of chains), so it would not be measuring
// a working provider.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SCOPES = ['openid', 'profile', 'email', 'offline_access', 'read', 'write'];
const RESOURCE_SERVERS = {
  'https://api-es.example': { alg: 'ES256' },
  'https://api-rs.example': { alg: 'RS256' },
};
const ACCESS_TOKEN_TTL = 600;

function fail(message) {
  process.stderr.write(`bench/oidc_provider: ${message}\n`);
  process.exit(2);
}

async function loadProvider() {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const peers = process.env.NODE_PEERS_DIR || join(here, '..', '.cache', 'node-peers');
  const manifest = join(peers, 'package.json');
  if (!existsSync(manifest)) fail(`node peers not installed in ${peers}: run scripts/ensure-node-peers.sh`);
  const require = createRequire(manifest);
  const entry = require.resolve('oidc-provider');
  const mod = await import(pathToFileURL(entry).href);
  const adapterFile = join(entry.slice(0, entry.lastIndexOf('/lib/') + 1), 'lib', 'adapters', 'memory_adapter.js');
  const { default: MemoryAdapter } = await import(pathToFileURL(adapterFile).href);
  return {
    Provider: mod.Provider, errors: mod.errors, MemoryAdapter, version: require('oidc-provider/package.json').version,
  };
}

// The interface of oidc-provider's LRU (get, set with { maxAge } in ms, delete), without the bound.
class UnboundedStore {
  constructor() { this.entries = new Map(); }

  get(key) {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= Date.now()) { this.entries.delete(key); return undefined; }
    return entry.value;
  }

  set(key, value, options) {
    const expiresAt = options?.maxAge !== undefined ? Date.now() + options.maxAge : Infinity;
    this.entries.set(key, { value, expiresAt });
    return this;
  }

  delete(key) { return this.entries.delete(key); }
}

function signingKey(type, alg, options) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid: `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`, alg, use: 'sig' };
}

const configPath = process.argv[2];
if (!configPath) fail('usage: node bench/oidc_provider.mjs <config.json>');
let config;
try {
  config = JSON.parse(readFileSync(configPath, 'utf8'));
} catch (err) {
  fail(`cannot read config ${configPath}: ${err.message}`);
}

const { Provider, errors, MemoryAdapter, version } = await loadProvider();
const store = new UnboundedStore();

let handler = (_req, res) => { res.statusCode = 503; res.end('starting'); };
const server = createServer((req, res) => handler(req, res));
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(config.port || 0), '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const clients = (config.clients || []).map((c) => ({
  client_id: c.client_id,
  client_secret: c.client_secret,
  token_endpoint_auth_method: 'client_secret_basic',
  redirect_uris: c.redirect_uris,
  grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
  response_types: ['code'],
  scope: SCOPES.join(' '),
}));

const provider = new Provider(issuer, {
  adapter: (model) => new MemoryAdapter(model, store),
  clients,
  jwks: {
    keys: [
      signingKey('rsa', 'RS256', { modulusLength: 2048 }),
      signingKey('ec', 'ES256', { namedCurve: 'P-256' }),
    ],
  },
  cookies: { keys: ['bastion-bench-cookie-key-1', 'bastion-bench-cookie-key-2'] },
  scopes: SCOPES,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name'],
  },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, email: `${id}@example.com`, email_verified: true, name: `User ${id}`,
          given_name: 'User', family_name: id,
        };
      },
    };
  },
  features: {
    devInteractions: { enabled: true }, // the login and consent pages (any password)
    introspection: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      getResourceServerInfo(_ctx, resourceIndicator) {
        const rs = RESOURCE_SERVERS[resourceIndicator];
        if (!rs) throw new errors.InvalidTarget();
        return {
          scope: 'read write',
          audience: resourceIndicator,
          accessTokenTTL: ACCESS_TOKEN_TTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: rs.alg } },
        };
      },
    },
  },
  issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  pkce: { required: () => true },
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 14 * 24 * 3600,
    Grant: 90 * 24 * 3600,
    Session: 24 * 3600,
    Interaction: 900,
  },
});

provider.on('server_error', (_ctx, err) => process.stderr.write(`bench/oidc_provider: server_error ${err.stack}\n`));
handler = provider.callback();

process.stdout.write(JSON.stringify({ issuer, port, version }) + '\n');
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
