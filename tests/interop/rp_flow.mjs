// Drives one OpenID Connect authorization code + PKCE flow against a running Bastion with the
// certified relying-party library openid-client (v6), answering Bastion's login and consent pages
// over plain HTTP (no browser).
//
//   node tests/interop/rp_flow.mjs [happy|tampered-state|wrong-verifier]
//
// Environment: BASTION_ISSUER, RP_CLIENT_ID, RP_CLIENT_SECRET, RP_REDIRECT_URI, RP_USERNAME,
// RP_PASSWORD, and optionally NODE_PEERS_DIR (default <repo>/.cache/node-peers, filled by
// scripts/ensure-node-peers.sh).
//
// Scenarios:
//   happy           discovery, login + consent, code exchange with ID token validation (nonce
//                   included), userinfo with the ID token's sub as expected subject.
//   tampered-state  the callback URL's state is altered: openid-client must refuse it before
//                   any token request is made.
//   wrong-verifier  the code is redeemed with a PKCE verifier other than the one whose challenge
//                   was sent: the provider must answer invalid_grant and openid-client must throw.
//
// Prints one JSON object on stdout. Exit codes: 0 the scenario behaved as expected; 1 it did not
// (e.g. a tampered response was accepted, or the happy path was refused); 2 the harness failed
// (peers missing, bad arguments, the login/consent pages did not follow the contract).

import {
  HarnessError, describeError, emit, failHarness, loadOpenIdClient, loginAndConsent, recordingFetch, requireEnv,
} from './rp_common.mjs';

const SCENARIOS = ['happy', 'tampered-state', 'wrong-verifier'];

async function main() {
  const scenario = process.argv[2] || 'happy';
  if (!SCENARIOS.includes(scenario)) throw new HarnessError(`unknown scenario ${scenario}; one of ${SCENARIOS.join(', ')}`);
  const issuer = requireEnv('BASTION_ISSUER');
  const clientId = requireEnv('RP_CLIENT_ID');
  const clientSecret = requireEnv('RP_CLIENT_SECRET');
  const redirectUri = requireEnv('RP_REDIRECT_URI');
  const username = requireEnv('RP_USERNAME');
  const password = requireEnv('RP_PASSWORD');

  const { client, version } = await loadOpenIdClient();
  const result = { scenario, openid_client: version, issuer };

  // Every request openid-client makes goes through here, so the result shows what was sent.
  const rpRequests = [];
  const recording = recordingFetch(rpRequests);
  result.rp_requests = rpRequests;

  // Discovery. openid-client refuses http:// issuers unless told otherwise: the loopback test
  // server is plain http, hence allowInsecureRequests. Bastion's client uses client_secret_basic.
  let config;
  try {
    config = await client.discovery(
      new URL(issuer), clientId, { client_secret: clientSecret }, client.ClientSecretBasic(clientSecret),
      { execute: [client.allowInsecureRequests], [client.customFetch]: recording },
    );
  } catch (err) {
    result.stage = 'discovery';
    result.error = describeError(err);
    return emit(1, result);
  }
  config[client.customFetch] = recording;
  const meta = config.serverMetadata();
  result.discovery = {
    issuer: meta.issuer,
    authorization_endpoint: meta.authorization_endpoint,
    token_endpoint: meta.token_endpoint,
    userinfo_endpoint: meta.userinfo_endpoint,
    jwks_uri: meta.jwks_uri,
    supports_pkce: meta.supportsPKCE(),
    code_challenge_methods_supported: meta.code_challenge_methods_supported,
    authorization_response_iss_parameter_supported: meta.authorization_response_iss_parameter_supported,
  };

  const codeVerifier = client.randomPKCECodeVerifier();
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  result.nonce_sent = nonce;
  result.state_sent = state;
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email',
    state,
    nonce,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
  });

  const flow = await loginAndConsent(authorizationUrl, { redirectUri, username, password });
  result.steps = flow.steps;
  result.pages_seen = flow.seen;
  result.cookies = flow.cookies;
  const callbackUrl = flow.callbackUrl;
  const callbackParams = Object.fromEntries(callbackUrl.searchParams);
  result.callback = {
    has_code: Boolean(callbackParams.code),
    state: callbackParams.state,
    iss: callbackParams.iss,
    error: callbackParams.error,
    error_description: callbackParams.error_description,
  };
  if (callbackParams.error) {
    throw new HarnessError(`provider redirected back with error=${callbackParams.error}`, { steps: flow.steps });
  }

  let grantUrl = callbackUrl;
  let verifier = codeVerifier;
  if (scenario === 'tampered-state') {
    grantUrl = new URL(callbackUrl);
    grantUrl.searchParams.set('state', client.randomState());
  } else if (scenario === 'wrong-verifier') {
    verifier = client.randomPKCECodeVerifier();
  }

  const tokenRequestsBefore = rpRequests.filter((r) => r.url === meta.token_endpoint).length;
  let tokens;
  try {
    tokens = await client.authorizationCodeGrant(config, grantUrl, {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
  } catch (err) {
    result.token_requests = rpRequests.filter((r) => r.url === meta.token_endpoint).length - tokenRequestsBefore;
    result.rejected = true;
    result.error = describeError(err);
    return emit(scenario === 'happy' ? 1 : 0, result);
  }
  result.token_requests = rpRequests.filter((r) => r.url === meta.token_endpoint).length - tokenRequestsBefore;
  result.rejected = false;
  if (scenario !== 'happy') {
    result.error = { message: `openid-client accepted the ${scenario} authorization response` };
    return emit(1, result);
  }

  result.token_response = {
    token_type: tokens.token_type,
    expires_in: tokens.expires_in,
    scope: tokens.scope,
    has_access_token: Boolean(tokens.access_token),
    has_id_token: Boolean(tokens.id_token),
    has_refresh_token: Boolean(tokens.refresh_token),
  };
  const claims = tokens.claims();
  result.id_token_claims = claims;
  if (!claims) {
    result.error = { message: 'no ID token claims' };
    return emit(1, result);
  }

  try {
    result.userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  } catch (err) {
    result.stage = 'userinfo';
    result.error = describeError(err);
    return emit(1, result);
  }
  return emit(0, result);
}

main().catch((err) => failHarness('rp_flow', err));
