// Drives Bastion's device authorization grant (RFC 8628) with the certified relying-party library
// openid-client (v6), to completion: initiateDeviceAuthorization, then pollDeviceAuthorizationGrant
// while a minimal user agent (plain fetch, cookie jar) answers the /device verification page as the
// user would on their phone: the prefilled code page, the sign-in form, then Allow or Deny.
//
//   node tests/interop/device_flow.mjs [approve|deny]
//
// Environment: BASTION_ISSUER, RP_CLIENT_ID (a public client with the device_code grant,
//   refresh_token and the scopes in DEVICE_SCOPE), RP_USERNAME, RP_PASSWORD; optionally
//   DEVICE_SCOPE (default "openid profile offline_access"), POLL_BUDGET_MS (default 25000: the
//   polling is aborted after that) and NODE_PEERS_DIR.
//
// Scenarios:
//   approve  the user approves only after openid-client's first poll was answered (so the library
//            goes through authorization_pending and polls again after the interval); the grant's
//            ID token is validated by openid-client (claims, and its signature through
//            enableNonRepudiationChecks); fetchUserInfo with the ID token's sub as the expected
//            subject; then the used device code is sent once more (must be invalid_grant).
//   deny     the user denies before the first poll; pollDeviceAuthorizationGrant must reject.
//
// Prints one JSON object on stdout; tokens appear only as short SHA-256 fingerprints. Steps that
// must succeed stop the run on failure (exit 1, with `stage` and `error`); outcomes the provider
// decides are recorded as {"rejected": bool, ...} for the test to judge. Exit 2: the harness failed
// (peers missing, bad arguments, the /device page broke its contract).

import {
  CookieJar, HarnessError, StageError, describeError, emit, failHarness, fingerprint, htmlUnescape,
  loadOpenIdClient, must, parseForms, recordingFetch, requireEnv, snippet,
} from './rp_common.mjs';

const SCENARIOS = ['approve', 'deny'];
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const PAGE_STEP_LIMIT = 8;

// ---------------------------------------------------------------------------------------------
// The /device page, answered over plain HTTP.

function textOf(html, re) {
  const m = html.match(re);
  return m ? htmlUnescape(m[1].replace(/<[^>]*>/g, '')).replace(/\s+/g, ' ').trim() : null;
}

// The fields a browser would submit for `form`: every named input with its value (text inputs as
// prefilled), password inputs left empty.
function formFields(form) {
  const fields = new URLSearchParams();
  for (const input of form.inputs) {
    if (!input.name) continue;
    const type = (input.type || 'text').toLowerCase();
    fields.append(input.name, type === 'password' ? '' : (input.value ?? ''));
  }
  return fields;
}

const normalizeCode = (code) => (code || '').toUpperCase().replace(/[\s-]/g, '');

// Starts at verification_uri_complete and submits forms until a page without a form: the code
// page (prefilled), the sign-in page, the consent page (Allow or Deny), then the result page
// (following same-origin redirects, e.g. post/redirect/get). Returns the steps taken.
async function answerDevicePage(startUrl, { userCode, username, password, decision }) {
  const jar = new CookieJar();
  const steps = [];
  const seen = { code: 0, login: 0, consent: 0 };
  const origin = new URL(startUrl).origin;
  let request = { method: 'GET', url: new URL(startUrl), body: undefined };

  for (let i = 0; i < PAGE_STEP_LIMIT; i++) {
    const headers = { accept: 'text/html,application/xhtml+xml' };
    const cookie = jar.header();
    if (cookie) headers.cookie = cookie;
    if (request.body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    let response;
    try {
      response = await fetch(request.url, { method: request.method, headers, body: request.body, redirect: 'manual' });
    } catch (err) {
      throw new HarnessError(`${request.method} ${request.url.href} failed: ${err.cause?.message || err.message}`, { steps });
    }
    const setCookies = jar.store(response);
    const location = response.headers.get('location');
    const step = {
      request: `${request.method} ${request.url.pathname}${request.url.search}`,
      sent_cookies: cookie ? cookie.split('; ').map((c) => c.split('=')[0]) : [],
      status: response.status,
      location: location ?? undefined,
      set_cookie: setCookies.map((c) => {
        const [pair, ...attrs] = c.split(';');
        return [pair.split('=')[0].trim(), ...attrs.map((a) => a.trim())].join('; ');
      }),
    };
    steps.push(step);

    if ([301, 302, 303, 307, 308].includes(response.status)) {
      step.kind = 'redirect';
      await response.arrayBuffer().catch(() => {});
      if (!location) throw new HarnessError(`${step.request} -> ${response.status} without Location`, { steps });
      const next = new URL(location, request.url);
      if (next.origin !== origin) throw new HarnessError(`redirected off the provider to ${next.href}`, { steps });
      const keep = response.status === 307 || response.status === 308;
      request = keep ? { ...request, url: next } : { method: 'GET', url: next, body: undefined };
      continue;
    }

    const text = await response.text();
    step.title = textOf(text, /<title[^>]*>([\s\S]*?)<\/title>/i);
    step.heading = textOf(text, /<h1[^>]*>([\s\S]*?)<\/h1>/i);
    const alert = textOf(text, /<div class="alert"[^>]*>([\s\S]*?)<\/div>/i);
    if (alert) step.alert = alert;
    if (response.status !== 200) {
      throw new HarnessError(`${step.request} -> ${response.status}`, { steps, body: snippet(text) });
    }
    const forms = parseForms(text).filter((f) => f.method === 'post');
    if (forms.length === 0) {
      step.kind = 'done';
      return { steps, seen, final: { title: step.title, heading: step.heading }, cookies: jar.names() };
    }
    const hasField = (f, name, value) => [...f.inputs, ...f.buttons]
      .some((x) => x.name === name && (value === undefined || x.value === value));
    const login = forms.find((f) => hasField(f, 'password'));
    const consent = forms.find((f) => hasField(f, 'decision', 'allow') && hasField(f, 'decision', 'deny'));
    const codeForm = forms.find((f) => hasField(f, 'user_code'));
    let form;
    let fields;
    if (login) {
      form = login;
      step.kind = 'login';
      if (++seen.login > 1) throw new HarnessError('sign-in page shown again after posting credentials', { steps, body: snippet(text) });
      fields = formFields(login);
      fields.set('username', username);
      fields.set('password', password);
    } else if (consent) {
      form = consent;
      step.kind = 'consent';
      if (++seen.consent > 1) throw new HarnessError('consent page shown again after deciding', { steps, body: snippet(text) });
      step.shows_user_code = text.includes(userCode);
      fields = formFields(consent);
      fields.set('decision', decision);
    } else if (codeForm) {
      form = codeForm;
      step.kind = 'code';
      if (++seen.code > 1) throw new HarnessError('code entry page shown again', { steps, body: snippet(text) });
      fields = formFields(codeForm);
      step.prefilled_user_code = fields.get('user_code') ?? null;
      // Typed by a user who reads the TV screen: lower case, dash replaced by a space (RFC 8628 §6.1).
      if (normalizeCode(fields.get('user_code')) !== normalizeCode(userCode)) {
        fields.set('user_code', userCode.toLowerCase().replace('-', ' '));
      }
    } else {
      throw new HarnessError(`${step.request} -> 200 but no code, sign-in or consent form`, { steps, body: snippet(text) });
    }
    step.form_fields = [...new Set(fields.keys())];
    if (!fields.get('csrf_token')) throw new HarnessError(`${step.kind} form has no csrf_token`, { steps, body: snippet(text) });
    request = { method: 'POST', url: new URL(form.action || request.url.href, request.url), body: fields.toString() };
  }
  throw new HarnessError(`no final page after ${PAGE_STEP_LIMIT} requests`, { steps });
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const scenario = process.argv[2];
  if (!SCENARIOS.includes(scenario)) {
    throw new HarnessError(`usage: node device_flow.mjs <${SCENARIOS.join('|')}>`);
  }
  const issuer = requireEnv('BASTION_ISSUER');
  const clientId = requireEnv('RP_CLIENT_ID');
  const username = requireEnv('RP_USERNAME');
  const password = requireEnv('RP_PASSWORD');
  const scope = process.env.DEVICE_SCOPE || 'openid profile offline_access';
  const pollBudgetMs = Number(process.env.POLL_BUDGET_MS || 25000);
  const { client, version } = await loadOpenIdClient();

  const requests = [];
  const recording = recordingFetch(requests);
  const result = { scenario, openid_client: version, rp_requests: requests };
  const started = Date.now();
  const since = () => Date.now() - started;

  try {
    // A public client (token_endpoint_auth_method none) on an http:// loopback issuer.
    const config = await must('discovery', () => client.discovery(
      new URL(issuer), clientId, undefined, client.None(),
      { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks], [client.customFetch]: recording },
    ));
    config[client.customFetch] = recording;
    const meta = config.serverMetadata();
    result.discovery = {
      issuer: meta.issuer,
      token_endpoint: meta.token_endpoint,
      device_authorization_endpoint: meta.device_authorization_endpoint,
      userinfo_endpoint: meta.userinfo_endpoint,
      jwks_uri: meta.jwks_uri,
      grant_types_supported: meta.grant_types_supported,
    };

    const device = await must('initiateDeviceAuthorization', () => client.initiateDeviceAuthorization(config, { scope }));
    result.device_authorization = {
      user_code: device.user_code,
      verification_uri: device.verification_uri,
      verification_uri_complete: device.verification_uri_complete,
      expires_in: device.expires_in,
      interval: device.interval,
      device_code_length: device.device_code?.length ?? 0,
    };
    const pageOptions = {
      userCode: device.user_code, username, password, decision: scenario === 'approve' ? 'allow' : 'deny',
    };
    const pageUrl = device.verification_uri_complete || device.verification_uri;

    // Watch the token endpoint: in the approve scenario the user answers only after the first
    // poll came back, so openid-client has to handle authorization_pending.
    const tokenPolls = [];
    let firstPollAnswered;
    const firstPoll = new Promise((resolve) => { firstPollAnswered = resolve; });
    config[client.customFetch] = async (url, options) => {
      const response = await recording(url, options);
      if (String(url) === meta.token_endpoint) {
        const body = await response.clone().json().catch(() => null);
        tokenPolls.push({ at_ms: since(), status: response.status, error: body?.error ?? null });
        firstPollAnswered();
      }
      return response;
    };
    result.token_polls = tokenPolls;

    const controller = new AbortController();
    const budget = setTimeout(() => controller.abort(new Error(`polling gave up after ${pollBudgetMs} ms`)), pollBudgetMs);
    const polling = client.pollDeviceAuthorizationGrant(config, device, undefined, { signal: controller.signal })
      .then((value) => ({ rejected: false, value }), (err) => ({ rejected: true, error: describeError(err) }));

    let outcome;
    try {
      if (scenario === 'approve') await Promise.race([firstPoll, polling]);
      try {
        result.page = await answerDevicePage(pageUrl, pageOptions);
        result.page.answered_at_ms = since();
      } catch (err) {
        controller.abort(err);
        await polling;
        throw err;
      }
      outcome = await polling;
    } finally {
      clearTimeout(budget);
    }
    result.grant_finished_at_ms = since();
    // The token requests pollDeviceAuthorizationGrant made (not the reuse check below).
    result.token_polls = [...tokenPolls];
    if (outcome.rejected) {
      result.grant = { rejected: true, error: outcome.error };
      emit(scenario === 'deny' ? 0 : 1, result);
      return;
    }
    const tokens = outcome.value;
    const claims = tokens.claims();
    result.grant = {
      rejected: false,
      token_type: tokens.token_type,
      scope: tokens.scope,
      expires_in: tokens.expires_in,
      has_access_token: Boolean(tokens.access_token),
      has_id_token: Boolean(tokens.id_token),
      has_refresh_token: Boolean(tokens.refresh_token),
      access_token_fp: fingerprint(tokens.access_token),
      refresh_token_fp: fingerprint(tokens.refresh_token),
      id_token_claims: claims ?? null,
    };
    if (scenario === 'deny') {
      emit(1, result);
      return;
    }

    // fetchUserInfo checks that the userinfo sub equals the expected subject (OIDC Core §5.3.2).
    const userinfo = await must('fetchUserInfo', () => client.fetchUserInfo(config, tokens.access_token, claims.sub));
    result.userinfo = userinfo;

    // RFC 8628 §3.5 / single use: the device code that produced tokens is refused afterwards.
    try {
      await client.genericGrantRequest(config, DEVICE_GRANT, { device_code: device.device_code });
      result.reuse = { rejected: false };
    } catch (err) {
      result.reuse = { rejected: true, error: describeError(err) };
    }
    emit(0, result);
  } catch (err) {
    if (!(err instanceof StageError)) throw err;
    result.stage = err.stage;
    result.error = describeError(err.cause);
    process.stderr.write(`device_flow.mjs: ${err.message}\n`);
    emit(1, result);
  }
}

main().catch((err) => failHarness('device_flow.mjs', err));
