// A real, certified OpenID provider for the relying-party interop tests: node's oidc-provider
// (pinned in package.json) on 127.0.0.1 with an ephemeral port, configured from a JSON file that
// the Python side (tests/interop/node_op.py) writes, so that Python owns the client ids, secrets,
// redirect URIs and the private_key_jwt client's public key.
//
//   node tests/interop/op_server.mjs <config.json>      (or OP_CONFIG=<config.json>)
//
// Once listening it prints ONE JSON line on stdout, {"issuer": "http://127.0.0.1:PORT", "port": PORT},
// then serves until SIGTERM / SIGINT. oidc-provider's warnings (dev interactions, default TTLs, ...)
// go to stderr.
//
// Config file:
//   {
//     "clients": [ {client_id, client_secret?, token_endpoint_auth_method, redirect_uris,
//                   post_logout_redirect_uris, jwks?, grant_types?, response_types?, ...}, ... ],
//     "port": 0                                   (optional)
//   }
// grant_types default to authorization_code, refresh_token, device_code and (for confidential
// clients) client_credentials; response_types to ["code"].

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';
const SCOPES = ['openid', 'profile', 'email', 'offline_access', 'read', 'write'];
// Resource indicators (RFC 8707) that get JWT access tokens (RFC 9068); any other is invalid_target.
const RESOURCE_SERVERS = {
  'https://api.example': { alg: 'RS256' },
  'https://api-es.example': { alg: 'ES256' },
};

function fail(message) {
  process.stderr.write(`op_server: ${message}\n`);
  process.exit(2);
}

async function loadProvider() {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const peers = process.env.NODE_PEERS_DIR || join(here, '..', '..', '.cache', 'node-peers');
  const manifest = join(peers, 'package.json');
  if (!existsSync(manifest)) fail(`node peers not installed in ${peers}: run scripts/ensure-node-peers.sh`);
  // ESM ignores NODE_PATH: resolve the entry point from the cache folder, import it by URL.
  const entry = createRequire(manifest).resolve('oidc-provider');
  const mod = await import(pathToFileURL(entry).href);
  const version = createRequire(manifest)('oidc-provider/package.json').version;
  return { Provider: mod.Provider, errors: mod.errors, version };
}

function signingKey(type, alg, options) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid: `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`, alg, use: 'sig' };
}

function clientMetadata(client) {
  if (!client.client_id) fail('every client needs a client_id');
  const confidential = client.token_endpoint_auth_method !== 'none';
  return {
    grant_types: [
      'authorization_code', 'refresh_token', DEVICE_CODE, ...(confidential ? ['client_credentials'] : []),
    ],
    response_types: ['code'],
    ...client,
  };
}

const configPath = process.argv[2] || process.env.OP_CONFIG;
if (!configPath) fail('usage: node op_server.mjs <config.json> (or OP_CONFIG=<config.json>)');
let config;
try {
  config = JSON.parse(readFileSync(configPath, 'utf8'));
} catch (err) {
  fail(`cannot read config ${configPath}: ${err.message}`);
}

const { Provider, errors, version } = await loadProvider();

// The port is only known after listen(): the Provider (whose issuer carries the port) is created
// afterwards and plugged into the already-listening server.
let handler = (_req, res) => { res.statusCode = 503; res.end('starting'); };
const server = createServer((req, res) => handler(req, res));
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(config.port || 0), '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: (config.clients || []).map(clientMetadata),
  jwks: {
    keys: [
      signingKey('rsa', 'RS256', { modulusLength: 2048 }), // first: the default for ID tokens
      signingKey('ec', 'ES256', { namedCurve: 'P-256' }),
    ],
  },
  cookies: { keys: ['bastion-interop-cookie-key-1', 'bastion-interop-cookie-key-2'] },
  scopes: SCOPES,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // Any account id logs in (devInteractions accepts any login / password).
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.com`, email_verified: true, name: `User ${id}` };
      },
    };
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    claimsParameter: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // The resource of the authorization request also applies at the token / refresh endpoints.
      useGrantedResource: () => true,
      getResourceServerInfo(_ctx, resourceIndicator) {
        const rs = RESOURCE_SERVERS[resourceIndicator];
        if (!rs) throw new errors.InvalidTarget();
        return {
          scope: 'read write',
          audience: resourceIndicator,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: rs.alg } },
        };
      },
    },
  },
  // Every client allowed the refresh_token grant gets one, no offline_access needed ...
  issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  // ... and every use of a refresh token replaces it.
  rotateRefreshToken: true,
  // PKCE (S256 only in v9) for every code flow, confidential clients included.
  pkce: { required: () => true },
});

provider.on('server_error', (_ctx, err) => process.stderr.write(`op_server: server_error ${err.stack}\n`));
handler = provider.callback();

process.stderr.write(`op_server: oidc-provider ${version} listening on ${issuer}\n`);
process.stdout.write(JSON.stringify({ issuer, port, version }) + '\n');

// Everything lives in memory: nothing to flush, stop at once.
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
