// Drives Bastion's token lifecycle with the certified relying-party library openid-client (v6):
// refresh-token rotation and reuse detection, the client credentials grant with a resource
// indicator, introspection (RFC 7662) and revocation (RFC 7009).
//
//   node tests/interop/token_lifecycle.mjs [refresh-rotation|client-credentials|introspect-revoke]
//
// Environment: BASTION_ISSUER, RP_CLIENT_ID, RP_CLIENT_SECRET (client_secret_basic), and
//   for refresh-rotation and introspect-revoke: RP_REDIRECT_URI, RP_USERNAME, RP_PASSWORD
//     (a client with the authorization_code and refresh_token grants and offline_access);
//   for client-credentials: CC_SCOPE, CC_RESOURCE (allowed to the client), CC_FORBIDDEN_SCOPE,
//     CC_FORBIDDEN_RESOURCE (not allowed to it);
//   optionally REUSE_WAIT_MS (refresh-rotation: how long to wait before replaying a rotated
//     refresh token, default 2300: past Bastion's 2-second reuse grace) and NODE_PEERS_DIR.
//
// Scenarios:
//   refresh-rotation    login + consent with offline_access, code exchange, then two
//                       refreshTokenGrant calls REUSE_WAIT_MS apart (each ID token validated by
//                       openid-client, its signature included); then the first refresh token,
//                       rotated more than REUSE_WAIT_MS earlier, is replayed (must be
//                       invalid_grant), then the newest one (must be invalid_grant too: the replay
//                       revoked the family); finally the newest refresh and access tokens are
//                       introspected.
//   client-credentials  clientCredentialsGrant with scope + resource; the JWT access token is
//                       validated as a resource server would (oauth4webapi validateJwtAccessToken,
//                       RFC 9068); introspection of it and of garbage tokens; a forbidden resource
//                       and a forbidden scope; revocation of the access token, then introspection.
//   introspect-revoke   code flow with offline_access; introspection of the access token, the
//                       refresh token and garbage; tokenRevocation of the refresh token (and of
//                       garbage); introspection afterwards and a refresh with the revoked token.
//
// Prints one JSON object on stdout; tokens appear only as short SHA-256 fingerprints. Steps that
// must succeed stop the run on failure (exit 1, with `stage` and `error`); steps that the provider
// may refuse are recorded as {"rejected": bool, "error": {...}} for the test to judge. Exit 2: the
// harness failed (peers missing, bad arguments, the login/consent pages broke the contract).

import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  HarnessError, StageError, describeError, emit, failHarness, fingerprint, loadOpenIdClient, loginAndConsent, must,
  recordingFetch, requireEnv,
} from './rp_common.mjs';

const SCENARIOS = ['refresh-rotation', 'client-credentials', 'introspect-revoke'];
const USER_SCOPE = 'openid profile email offline_access';

// A step the provider may refuse: the outcome is data.
async function attempt(fn) {
  try {
    const value = await fn();
    return { rejected: false, value };
  } catch (err) {
    return { rejected: true, error: describeError(err) };
  }
}

function decodeJwt(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const part = (p) => JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  return { header: part(parts[0]), payload: part(parts[1]) };
}

function summarize(tokens) {
  const claims = tokens.id_token ? tokens.claims() : undefined;
  return {
    token_type: tokens.token_type,
    expires_in: tokens.expires_in,
    scope: tokens.scope,
    has_access_token: Boolean(tokens.access_token),
    has_id_token: Boolean(tokens.id_token),
    has_refresh_token: Boolean(tokens.refresh_token),
    access_token_fp: fingerprint(tokens.access_token),
    refresh_token_fp: fingerprint(tokens.refresh_token),
    id_token_claims: claims,
  };
}

function garbageTokens() {
  return {
    random: randomBytes(32).toString('base64url'),
    // JWT-shaped, but neither a valid header nor a signature.
    jwt_shaped: `eyJhbGciOiJub25lIn0.${Buffer.from('{"sub":"x"}').toString('base64url')}.${randomBytes(8).toString('hex')}`,
  };
}

async function setup(client, rpRequests) {
  const issuer = requireEnv('BASTION_ISSUER');
  const clientId = requireEnv('RP_CLIENT_ID');
  const clientSecret = requireEnv('RP_CLIENT_SECRET');
  const recording = recordingFetch(rpRequests);
  // http:// loopback issuer, hence allowInsecureRequests; enableNonRepudiationChecks makes
  // openid-client verify every ID token's signature against jwks_uri (oauth4webapi alone checks
  // the claims of a token-endpoint ID token, not its signature).
  const config = await must('discovery', () => client.discovery(
    new URL(issuer), clientId, { client_secret: clientSecret }, client.ClientSecretBasic(clientSecret),
    { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks], [client.customFetch]: recording },
  ));
  config[client.customFetch] = recording;
  const meta = config.serverMetadata();
  const discovery = {
    issuer: meta.issuer,
    token_endpoint: meta.token_endpoint,
    jwks_uri: meta.jwks_uri,
    introspection_endpoint: meta.introspection_endpoint,
    revocation_endpoint: meta.revocation_endpoint,
    grant_types_supported: meta.grant_types_supported,
    scopes_supported: meta.scopes_supported,
    introspection_endpoint_auth_methods_supported: meta.introspection_endpoint_auth_methods_supported,
    revocation_endpoint_auth_methods_supported: meta.revocation_endpoint_auth_methods_supported,
  };
  for (const endpoint of ['introspection_endpoint', 'revocation_endpoint']) {
    if (!meta[endpoint]) throw new StageError('discovery', new Error(`discovery has no ${endpoint}`));
  }
  return { config, meta, discovery, clientId };
}

// Login + consent over HTTP, then openid-client redeems the code (PKCE S256, state, nonce).
async function codeFlow(client, config) {
  const redirectUri = requireEnv('RP_REDIRECT_URI');
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  // OIDC Core §11: a request for offline_access carries prompt=consent.
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: USER_SCOPE,
    prompt: 'consent',
    state,
    nonce,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
  });
  const flow = await loginAndConsent(authorizationUrl, {
    redirectUri, username: requireEnv('RP_USERNAME'), password: requireEnv('RP_PASSWORD'),
  });
  const callbackError = flow.callbackUrl.searchParams.get('error');
  if (callbackError) {
    throw new HarnessError(`provider redirected back with error=${callbackError}`, { steps: flow.steps });
  }
  const tokens = await must('authorization_code_grant', () => client.authorizationCodeGrant(config, flow.callbackUrl, {
    pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  }));
  return { tokens, pages_seen: flow.seen, nonce_sent: nonce };
}

async function introspect(client, config, token, parameters) {
  return attempt(() => client.tokenIntrospection(config, token, parameters));
}

// ---------------------------------------------------------------------------------------------

async function refreshRotation(client, config, result) {
  const flow = await codeFlow(client, config);
  result.pages_seen = flow.pages_seen;
  result.code_grant = summarize(flow.tokens);
  result.code_grant.nonce_sent = flow.nonce_sent;
  const rt0 = flow.tokens.refresh_token;
  if (!rt0) throw new StageError('authorization_code_grant', new Error('no refresh_token with offline_access'));

  // Each call: openid-client validates the new ID token (iss, aud, exp, iat, azp, signature).
  const first = await must('refresh_1', () => client.refreshTokenGrant(config, rt0));
  result.refresh_1 = summarize(first);
  const rt1 = first.refresh_token;
  if (!rt1) throw new StageError('refresh_1', new Error('the refresh response carries no refresh_token'));

  // Wait out the reuse grace here: rt0 (rotated by refresh_1) is then replayed more than `wait`
  // after its rotation, and refresh_2's ID token is issued visibly later than the original one
  // (its iat must move on, its auth_time must not: OIDC Core §12.2).
  const wait = Number(process.env.REUSE_WAIT_MS || 2300);
  await sleep(wait);
  result.waited_ms = wait;

  const second = await must('refresh_2', () => client.refreshTokenGrant(config, rt1));
  result.refresh_2 = summarize(second);
  const rt2 = second.refresh_token;
  result.rotation = {
    refresh_tokens_fp: [rt0, rt1, rt2].map(fingerprint),
    all_distinct: Boolean(rt2) && new Set([rt0, rt1, rt2]).size === 3,
  };

  // rt0 was consumed by refresh_1 more than `wait` ago: a replay, not a race.
  result.reuse_first = await attempt(() => client.refreshTokenGrant(config, rt0));
  if (!result.reuse_first.rejected) result.reuse_first.value = summarize(result.reuse_first.value);
  // The replay must have revoked the family, so the newest refresh token is dead as well.
  if (rt2) {
    result.newest_after_reuse = await attempt(() => client.refreshTokenGrant(config, rt2));
    if (!result.newest_after_reuse.rejected) result.newest_after_reuse.value = summarize(result.newest_after_reuse.value);
    result.introspect_newest_refresh_after_reuse = await introspect(client, config, rt2, { token_type_hint: 'refresh_token' });
  }
  result.introspect_newest_access_after_reuse = await introspect(client, config, second.access_token);
}

async function clientCredentials(client, config, result, oauth, meta) {
  const scope = requireEnv('CC_SCOPE');
  const resource = requireEnv('CC_RESOURCE');
  const tokens = await must('client_credentials_grant', () => client.clientCredentialsGrant(config, { scope, resource }));
  result.token = summarize(tokens);
  result.requested = { scope, resource };
  const at = tokens.access_token;
  result.access_token_jwt = decodeJwt(at);

  // What a resource server using oauth4webapi does with the bearer token (RFC 9068): typ at+jwt,
  // signature against jwks_uri, iss, aud = the resource, exp, and iat/jti/sub/client_id present.
  const request = new Request(resource, { headers: { authorization: `Bearer ${at}` } });
  result.resource_server_validation = await attempt(() => oauth.validateJwtAccessToken(
    { ...meta }, request, resource,
    { [oauth.allowInsecureRequests]: true, [oauth.customFetch]: config[client.customFetch] },
  ));

  result.introspect_access = await introspect(client, config, at, { token_type_hint: 'access_token' });
  result.introspect_garbage = {};
  for (const [name, token] of Object.entries(garbageTokens())) {
    result.introspect_garbage[name] = await introspect(client, config, token);
  }
  result.forbidden_resource = await attempt(() => client.clientCredentialsGrant(
    config, { scope, resource: requireEnv('CC_FORBIDDEN_RESOURCE') }));
  result.forbidden_scope = await attempt(() => client.clientCredentialsGrant(
    config, { scope: requireEnv('CC_FORBIDDEN_SCOPE'), resource }));
  for (const key of ['forbidden_resource', 'forbidden_scope']) {
    if (!result[key].rejected) result[key].value = summarize(result[key].value);
  }

  result.revoke_access = await attempt(() => client.tokenRevocation(config, at, { token_type_hint: 'access_token' }));
  result.introspect_access_after_revoke = await introspect(client, config, at);
}

async function introspectRevoke(client, config, result) {
  const flow = await codeFlow(client, config);
  result.pages_seen = flow.pages_seen;
  const { tokens } = flow;
  result.code_grant = summarize(tokens);
  if (!tokens.refresh_token) throw new StageError('authorization_code_grant', new Error('no refresh_token with offline_access'));

  result.introspect_access = await introspect(client, config, tokens.access_token);
  result.introspect_refresh = await introspect(client, config, tokens.refresh_token, { token_type_hint: 'refresh_token' });
  result.introspect_garbage = {};
  const garbage = garbageTokens();
  for (const [name, token] of Object.entries(garbage)) {
    result.introspect_garbage[name] = await introspect(client, config, token);
  }

  result.revoke_refresh = await attempt(() => client.tokenRevocation(config, tokens.refresh_token, { token_type_hint: 'refresh_token' }));
  result.introspect_refresh_after_revoke = await introspect(client, config, tokens.refresh_token);
  // Revoking a refresh token ends its family (RFC 7009 §2.1 allows it; Bastion's spec requires it).
  result.introspect_access_after_revoke = await introspect(client, config, tokens.access_token);
  result.refresh_after_revoke = await attempt(() => client.refreshTokenGrant(config, tokens.refresh_token));
  if (!result.refresh_after_revoke.rejected) result.refresh_after_revoke.value = summarize(result.refresh_after_revoke.value);
  // RFC 7009 §2.2: an invalid token is not an error, the answer is 200.
  result.revoke_garbage = await attempt(() => client.tokenRevocation(config, garbage.random));
}

async function main() {
  const scenario = process.argv[2] || 'refresh-rotation';
  if (!SCENARIOS.includes(scenario)) throw new HarnessError(`unknown scenario ${scenario}; one of ${SCENARIOS.join(', ')}`);
  const { client, version, loadOauth4webapi } = await loadOpenIdClient();
  const rpRequests = [];
  const result = { scenario, openid_client: version };
  try {
    const { config, meta, discovery, clientId } = await setup(client, rpRequests);
    Object.assign(result, { client_id: clientId, discovery });
    if (scenario === 'refresh-rotation') await refreshRotation(client, config, result);
    else if (scenario === 'client-credentials') await clientCredentials(client, config, result, await loadOauth4webapi(), meta);
    else await introspectRevoke(client, config, result);
  } catch (err) {
    if (!(err instanceof StageError)) throw err;
    result.stage = err.stage;
    result.error = describeError(err.cause);
    result.rp_requests = rpRequests;
    return emit(1, result);
  }
  result.rp_requests = rpRequests;
  return emit(0, result);
}

main().catch((err) => failHarness('token_lifecycle', err));
