// Shared by the interop drivers (rp_flow.mjs, token_lifecycle.mjs): loading the pinned
// openid-client from the node-peers cache, a minimal user agent that answers Bastion's login and
// consent pages over plain HTTP (cookie jar, manual redirects, form parsing), a fetch that records
// what the library sent, and JSON output helpers.

import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const STEP_LIMIT = 12;
const SNIPPET = 600;

export class HarnessError extends Error {
  constructor(message, details = {}) {
    super(message);
    this.name = 'HarnessError';
    this.details = details;
  }
}

export function emit(exitCode, result) {
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  process.exitCode = exitCode;
}

export function requireEnv(name) {
  const value = process.env[name];
  if (!value) throw new HarnessError(`environment variable ${name} is not set`);
  return value;
}

export async function loadOpenIdClient() {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const peers = process.env.NODE_PEERS_DIR || join(here, '..', '..', '.cache', 'node-peers');
  const manifest = join(peers, 'package.json');
  if (!existsSync(manifest)) {
    throw new HarnessError(`node peers not installed in ${peers}: run scripts/ensure-node-peers.sh`);
  }
  // ESM ignores NODE_PATH: resolve the package's entry point from the cache folder, then import it
  // by absolute URL. Its own imports (oauth4webapi, jose) resolve from its location in there.
  let entry;
  try {
    entry = createRequire(manifest).resolve('openid-client');
  } catch (err) {
    throw new HarnessError(`cannot resolve openid-client from ${peers}: ${err.message}`);
  }
  const client = await import(pathToFileURL(entry).href);
  const version = createRequire(manifest)('openid-client/package.json').version;
  // The low-level library openid-client is built on (same copy it imports), for the checks
  // openid-client does not expose, such as validating a JWT access token as a resource server.
  const loadOauth4webapi = async () => import(pathToFileURL(createRequire(entry).resolve('oauth4webapi')).href);
  return { client, version, loadOauth4webapi };
}

// A fetch for openid-client's customFetch that records every request it makes (method, URL,
// how the client authenticated, the form parameter names, the status), so that the JSON output
// shows what the library actually sent.
export function recordingFetch(log) {
  return async (url, options) => {
    const headers = new Headers(options?.headers);
    const authorization = headers.get('authorization');
    const entry = { method: options?.method || 'GET', url: String(url) };
    if (authorization) entry.auth = authorization.split(' ')[0];
    if (options?.body instanceof URLSearchParams) entry.params = [...new Set(options.body.keys())];
    else if (typeof options?.body === 'string' && headers.get('content-type')?.includes('form-urlencoded')) {
      entry.params = [...new Set(new URLSearchParams(options.body).keys())];
    }
    log.push(entry);
    const response = await fetch(url, options);
    entry.status = response.status;
    return response;
  };
}

// ---------------------------------------------------------------------------------------------
// A minimal user agent: cookie jar, manual redirects, form parsing.

export class CookieJar {
  constructor() {
    this.cookies = new Map();
  }

  store(response) {
    const headers = typeof response.headers.getSetCookie === 'function'
      ? response.headers.getSetCookie()
      : (response.headers.get('set-cookie') ? [response.headers.get('set-cookie')] : []);
    for (const line of headers) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v = ''] = a.split('=');
        const key = k.trim().toLowerCase();
        if (key === 'max-age') return Number(v.trim()) <= 0;
        if (key === 'expires') return Date.parse(v.trim()) < Date.now();
        return false;
      });
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return headers;
  }

  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  names() {
    return [...this.cookies.keys()];
  }
}

export function htmlUnescape(s) {
  return s
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&#39;|&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

export function parseAttributes(source) {
  const attrs = {};
  const re = /([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g;
  let m;
  while ((m = re.exec(source)) !== null) {
    const value = m[2] ?? m[3] ?? m[4] ?? '';
    attrs[m[1].toLowerCase()] = htmlUnescape(value);
  }
  return attrs;
}

export function parseForms(html) {
  const forms = [];
  const formRe = /<form\b([^>]*)>([\s\S]*?)<\/form\s*>/gi;
  let m;
  while ((m = formRe.exec(html)) !== null) {
    const attrs = parseAttributes(m[1]);
    const body = m[2];
    const inputs = [...body.matchAll(/<input\b([^>]*)>/gi)].map((x) => parseAttributes(x[1]));
    const buttons = [...body.matchAll(/<button\b([^>]*)>/gi)].map((x) => parseAttributes(x[1]));
    forms.push({
      method: (attrs.method || 'get').toLowerCase(),
      action: attrs.action ?? '',
      inputs,
      buttons,
    });
  }
  return forms;
}

function hiddenFields(form) {
  const fields = new URLSearchParams();
  for (const input of form.inputs) {
    if ((input.type || '').toLowerCase() === 'hidden' && input.name) fields.append(input.name, input.value ?? '');
  }
  return fields;
}

export function snippet(text) {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > SNIPPET ? flat.slice(0, SNIPPET) + '…' : flat;
}

function isCallback(url, redirectUri) {
  const target = new URL(redirectUri);
  return url.origin === target.origin && url.pathname === target.pathname;
}

// Walks from the authorization URL through Bastion's login and consent pages until the provider
// redirects to the client's redirect_uri; returns that URL (not fetched).
export async function loginAndConsent(authorizationUrl, { redirectUri, username, password }) {
  const jar = new CookieJar();
  const steps = [];
  const seen = { login: 0, consent: 0 };
  let request = { method: 'GET', url: new URL(authorizationUrl), body: undefined };

  for (let i = 0; i < STEP_LIMIT; i++) {
    const headers = { accept: 'text/html,application/xhtml+xml' };
    const cookie = jar.header();
    if (cookie) headers.cookie = cookie;
    if (request.body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';

    let response;
    try {
      response = await fetch(request.url, {
        method: request.method, headers, body: request.body, redirect: 'manual',
      });
    } catch (err) {
      throw new HarnessError(`${request.method} ${request.url.href} failed: ${err.cause?.message || err.message}`, { steps });
    }
    const setCookies = jar.store(response);
    const location = response.headers.get('location');
    const step = {
      request: `${request.method} ${request.url.pathname}${request.url.search ? '?…' : ''}`,
      status: response.status,
      location: location ?? undefined,
      // Cookie names with their attributes, values left out.
      set_cookie: setCookies.map((c) => {
        const [pair, ...attrs] = c.split(';');
        return [pair.split('=')[0].trim(), ...attrs.map((a) => a.trim())].join('; ');
      }),
    };
    steps.push(step);

    if ([301, 302, 303, 307, 308].includes(response.status)) {
      await response.arrayBuffer().catch(() => {});
      if (!location) throw new HarnessError(`${step.request} -> ${response.status} without Location`, { steps });
      const next = new URL(location, request.url);
      if (isCallback(next, redirectUri)) {
        step.kind = 'callback';
        return { callbackUrl: next, steps, seen, cookies: jar.names() };
      }
      if (next.origin !== request.url.origin) {
        throw new HarnessError(`redirected off the provider to ${next.href}`, { steps });
      }
      const keep = response.status === 307 || response.status === 308;
      request = keep ? { ...request, url: next } : { method: 'GET', url: next, body: undefined };
      continue;
    }

    const text = await response.text();
    if (response.status !== 200) {
      throw new HarnessError(`${step.request} -> ${response.status}`, { steps, body: snippet(text) });
    }
    const forms = parseForms(text).filter((f) => f.method === 'post');
    const login = forms.find((f) => f.inputs.some((x) => x.name === 'password'));
    const consent = forms.find((f) => [...f.buttons, ...f.inputs].some((x) => x.name === 'decision' && x.value === 'allow'));
    let fields;
    let form;
    if (login) {
      form = login;
      step.kind = 'login';
      seen.login++;
      if (seen.login > 1) throw new HarnessError('login page shown again after posting credentials', { steps, body: snippet(text) });
      fields = hiddenFields(login);
      fields.set('username', username);
      fields.set('password', password);
    } else if (consent) {
      form = consent;
      step.kind = 'consent';
      seen.consent++;
      if (seen.consent > 1) throw new HarnessError('consent page shown again after allowing', { steps, body: snippet(text) });
      fields = hiddenFields(consent);
      fields.set('decision', 'allow');
    } else {
      throw new HarnessError(`${step.request} -> 200 but no login or consent form found`, { steps, body: snippet(text) });
    }
    step.csrf_token = fields.has('csrf_token');
    if (!fields.get('csrf_token')) {
      throw new HarnessError(`${step.kind} form has no hidden csrf_token`, { steps, body: snippet(text) });
    }
    request = { method: 'POST', url: new URL(form.action || request.url.href, request.url), body: fields.toString() };
  }
  throw new HarnessError(`no redirect to ${redirectUri} after ${STEP_LIMIT} requests`, { steps });
}

// ---------------------------------------------------------------------------------------------

export function describeError(err) {
  const out = { name: err?.name, message: err?.message };
  for (const key of ['code', 'error', 'error_description', 'status']) {
    if (err?.[key] !== undefined) out[key] = err[key];
  }
  if (err?.cause) {
    const c = err.cause;
    out.cause = c instanceof Error || typeof c !== 'object'
      ? { name: c?.name, message: c?.message ?? String(c), code: c?.code }
      : c;
  }
  return out;
}

// The driver's catch-all: a harness failure prints its steps on stderr and exits 2.
export function failHarness(name, err) {
  const result = { harness_error: err.message, ...(err.details || {}) };
  if (!(err instanceof HarnessError)) result.stack = err.stack;
  process.stderr.write(`${name}: ${err.message}\n`);
  if (err.details?.steps) {
    for (const s of err.details.steps) process.stderr.write(`  ${s.request} -> ${s.status}${s.location ? ' ' + s.location : ''}\n`);
  }
  if (err.details?.body) process.stderr.write(`  body: ${err.details.body}\n`);
  emit(2, result);
}

// A failure at a named stage of a scenario, so that the test names what broke.
export class StageError extends Error {
  constructor(stage, cause) {
    super(`${stage} failed: ${cause?.message}`);
    this.stage = stage;
    this.cause = cause;
  }
}

// A step that must succeed.
export async function must(stage, fn) {
  try {
    return await fn();
  } catch (err) {
    throw new StageError(stage, err);
  }
}

// Tokens are secrets: output shows only a short SHA-256 fingerprint.
export function fingerprint(token) {
  return token ? createHash('sha256').update(token).digest('hex').slice(0, 12) : null;
}
