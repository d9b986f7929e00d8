"""Property-based tests of the HTTP surface: random requests to /authorize, /token, /userinfo and /logout.

Whatever is sent, the provider must answer without a 5xx and without leaking a traceback, in the
shape the RFCs prescribe: RFC 6749 §5.2 / RFC 6750 §3.1 JSON errors (no-store, a challenge on 401)
at /token and /userinfo; at /authorize an error page (never a redirect) or a redirect to the
client's registered redirect URI only, with `iss` (RFC 9207) and the request's `state`; at /logout
a redirect to a registered post-logout redirect URI only.

Hypothesis and async: the provider is built once per test module on an `asyncio.Runner` owned by a
module-scoped fixture, and every example drives the ASGI app on that runner's loop. Values that
exist only at run time (real tokens, the key id, fresh codes) are read by the strategies from that
fixture, so valid and near-valid inputs are mixed with random ones and deep branches are reached.
Explicit `@example`s keep the minimal reproductions of what these properties found.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import re
import secrets
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

from bastion.config import Settings
from bastion.core.endpoints import authorize as az
from bastion.core.models import BrowserSession, Client, Consent, User
from bastion.core.passwords import hash_password
from bastion.core.provider import Provider
from bastion.core.secrets import hash_secret
from bastion.core.tokens import issue_access_token
from bastion.store.sql.migrate import upgrade
from bastion.web.app import build_provider, create_app
from tests.conftest import ALICE_PASSWORD, ISSUER, SECRET
from tests.web.flow import APP_REDIRECT, Flow

T = TypeVar("T")

NATIVE_REDIRECT = "http://127.0.0.1/callback"
APP_LOGOUT_REDIRECT = "https://app.example/bye"
VERIFIER = "v" * 20 + "-._~" + "V" * 19  # 43 characters, the RFC 7636 alphabet
TRACEBACK_MARKERS = ("Traceback", 'File "')
# RFC 6749 §5.2, RFC 6750 §3.1 and RFC 8707 §2 (invalid_target).
TOKEN_ERRORS = frozenset({"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                          "unsupported_grant_type", "invalid_scope", "invalid_token", "insufficient_scope",
                          "invalid_target"})
# RFC 6749 §4.1.2.1 and OIDC Core §3.1.2.6.
AUTHORIZE_ERRORS = frozenset({
    "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type", "invalid_scope",
    "server_error", "temporarily_unavailable", "interaction_required", "login_required",
    "account_selection_required", "consent_required", "invalid_request_uri", "invalid_request_object",
    "request_not_supported", "request_uri_not_supported", "registration_not_supported", "invalid_target",
})
# RFC 6749 §5.2: error_description is restricted to %x20-21 / %x23-5B / %x5D-7E.
DESCRIPTION = re.compile(r'^[\x20\x21\x23-\x5b\x5d-\x7e]*$')
FRESH_CODE = "\x00fresh-code\x00"  # replaced by a newly issued authorization code when sent

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
AUTHORIZE_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=300)  # the deepest endpoint


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


CHALLENGE = s256(VERIFIER)


# --------------------------------------------------------------------------------------------------
# The provider, once per module, on a loop of our own.


def _header_bytes(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode("latin-1") if all(ord(c) < 256 for c in value) else value.encode()


class Harness:
    """The provider and a client for it, all on one event loop (a plain class: short in failure reports)."""

    def __init__(self, runner: asyncio.Runner, provider: Provider, http: httpx.AsyncClient) -> None:
        self.runner, self.provider, self.http = runner, provider, http
        self.real: dict[str, str] = {}
        self.session_cookie = ""

    def __repr__(self) -> str:
        return "Harness()"

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    async def new_session(self) -> str:
        value, now = secrets.token_urlsafe(32), self.provider.now()
        await self.provider.store.create_session(
            BrowserSession(hash_secret(value), "user-alice", now - timedelta(seconds=5), now + timedelta(hours=1)))
        return value

    async def fresh_code(self, client_id: str) -> str:
        redirect_uri = NATIVE_REDIRECT if client_id == "native" else APP_REDIRECT
        now = self.provider.now()
        session = BrowserSession(hash_secret(self.session_cookie), "user-alice", now - timedelta(seconds=5),
                                 now + timedelta(hours=1))
        request = az.AuthorizationRequest(client_id=client_id, redirect_uri=redirect_uri, response_mode="query",
                                          scope=("openid", "profile"), code_challenge=CHALLENGE, nonce="n")
        return (await az.issue_code(self.provider, request, session)).params["code"]

    async def send(self, method: str, url: str, *, content: bytes | None = None,
                   headers: dict[str, str | bytes] | None = None, cookie: str | None = None) -> httpx.Response:
        self.http.cookies.clear()  # every example stands alone; a session is sent explicitly
        # Header values go out as raw bytes (ISO-8859-1 for text), as any HTTP client may send them.
        all_headers = {k: _header_bytes(v) for k, v in (headers or {}).items()}
        if cookie:
            all_headers["cookie"] = f"bastion_session={cookie}".encode()
        try:
            return await self.http.request(method, url, content=content, headers=all_headers)
        except httpx.InvalidURL:
            reject()  # longer than any HTTP client sends (httpx refuses URLs over 64 KiB); not a server input
            raise


async def _build(tmp: Path) -> tuple[Provider, httpx.AsyncClient]:
    url = f"sqlite+aiosqlite:///{tmp}/bastion.db"
    await upgrade(url)
    provider = await build_provider(Settings(issuer=ISSUER, database_url=url, var_dir=tmp,
                                             key_encryption_secret="k" * 48))
    now = datetime.now(UTC)
    await provider.store.create_client(Client(
        client_id="app", client_name="Example App", redirect_uris=(APP_REDIRECT,), secret_hash=hash_secret(SECRET),
        post_logout_redirect_uris=(APP_LOGOUT_REDIRECT,), created_at=now))
    await provider.store.create_client(Client(
        client_id="native", client_name="Native App", redirect_uris=(NATIVE_REDIRECT,),
        token_endpoint_auth_method="none", application_type="native", created_at=now))
    await provider.store.create_user(User(
        id="user-alice", username="alice", password_hash=hash_password(ALICE_PASSWORD),
        claims={"email": "alice@example.com", "email_verified": True, "name": "Alice Liddell"},
        created_at=now, updated_at=now))
    # An unhandled error is re-raised here (after the app sent its 500), so that Hypothesis tells
    # distinct crashes apart by where they were raised; a 500 sent on purpose fails `assert_no_crash`.
    transport = httpx.ASGITransport(app=create_app(provider=provider), raise_app_exceptions=True)
    return provider, httpx.AsyncClient(transport=transport, base_url=ISSUER)


async def _real_tokens(harness: Harness) -> None:
    """A real access token and ID token (through the whole flow), and one without `openid`."""
    _, body = await Flow(harness.http, harness.provider).tokens()
    harness.http.cookies.clear()
    provider = harness.provider
    client = await provider.store.get_client("app")
    assert client is not None
    no_openid = issue_access_token(provider, client=client, subject="user-alice", scope=("profile",),
                                   grant_id="g-no-openid")
    assert no_openid.record is not None
    await provider.store.record_access_token(no_openid.record)
    header = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[0] + "=="))
    harness.real.update(access_token=body["access_token"], id_token=body["id_token"],
                        no_openid_token=no_openid.token, kid=header["kid"])
    harness.session_cookie = await harness.new_session()
    await provider.store.save_consent(Consent("user-alice", "app", ("openid", "profile", "email"), provider.now()))


CURRENT: list[Harness] = []  # the module's harness, for strategies that need run-time values


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    runner = asyncio.Runner()
    runner.__enter__()
    try:
        provider, http = runner.run(_build(tmp_path_factory.mktemp("properties")))
        h = Harness(runner, provider, http)
        try:
            h.run(_real_tokens(h))
            CURRENT.append(h)
            yield h
        finally:
            CURRENT.clear()
            h.run(http.aclose())
            h.run(provider.store.close())
    finally:
        runner.__exit__(None, None, None)


def real(name: str) -> str:
    return CURRENT[0].real[name]


# --------------------------------------------------------------------------------------------------
# Strategies.

Value = str | bytes
junk_text = st.text(max_size=30)
# bytes are percent-encoded raw, so they arrive as invalid UTF-8 once decoded.
junk: st.SearchStrategy[Value] = st.one_of(junk_text, st.binary(max_size=16))
B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def mixed(*valid: Value) -> st.SearchStrategy[Value]:
    return st.one_of(st.sampled_from(valid), junk)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
# Deeply nested JSON: Python's decoder gives up (RecursionError) past the recursion limit, 1000 by
# default but raised while Hypothesis runs a test, hence 10000 (still short enough for a JWS).
DEEP = 10_000
deep_json = st.one_of(st.builds(lambda n: "[" * n, st.sampled_from([1, 100, 1001, DEEP])),
                      st.builds(lambda n: '{"userinfo":' * n, st.sampled_from([1, 100, 1001, 2000])))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=True)


claims_param = st.one_of(
    st.builds(_dumps, st.fixed_dictionaries({}, optional={
        "userinfo": st.one_of(st.dictionaries(st.sampled_from(["email", "name", "x", "sub"]),
                                              st.none() | st.fixed_dictionaries({"essential": st.booleans()}),
                                              max_size=3), json_values),
        "id_token": st.one_of(st.dictionaries(st.sampled_from(["email", "name", "acr", "auth_time"]),
                                              st.none() | st.fixed_dictionaries({"values": json_values}),
                                              max_size=3), json_values),
    })),
    st.builds(_dumps, json_values),
    deep_json,
    junk,
)

segment = st.one_of(
    st.builds(b64url, st.binary(max_size=48)),
    st.builds(lambda v: b64url(_dumps(v).encode()), json_values),
    st.builds(lambda s: b64url(s.encode()), deep_json),
    st.text(alphabet=B64URL_ALPHABET + "=+/ .", max_size=48),
    st.text(max_size=12),  # anything, including non-ASCII
)


@st.composite
def forged_jwt(draw: st.DrawFn) -> str:
    """A structurally valid JWS whose header names our real key: everything but the signature is right."""
    header: dict[str, Any] = {}
    alg = draw(st.sampled_from(["RS256", "RS256", "RS256", "ES256", "EdDSA", "none", "HS256", "rs256", None]))
    if alg is not None:
        header["alg"] = alg
    kid = draw(st.one_of(st.just("real"), st.just("real"), st.none(), json_values))
    if kid is not None:
        header["kid"] = real("kid") if kid == "real" else kid
    typ = draw(st.sampled_from(["at+jwt", "JWT", "at+jwt", "application/at+jwt", "AT+JWT", None, 1]))
    if typ is not None:
        header["typ"] = typ
    if draw(st.booleans()):
        header.update(draw(st.dictionaries(st.sampled_from(["crit", "jku", "x5u", "jwk", "b64"]), json_values,
                                           max_size=2)))
    claims = draw(st.fixed_dictionaries({}, optional={
        "iss": st.sampled_from([ISSUER, ISSUER + "/", "https://evil.example"]),
        "sub": st.sampled_from(["user-alice", "nobody"]) | json_values,
        "aud": st.sampled_from([ISSUER, "app", [ISSUER, "x"]]) | json_values,
        "exp": st.integers(min_value=-2**63, max_value=2**63) | json_values,
        "jti": st.text(max_size=10) | json_values,
        "scope": st.sampled_from(["openid", "openid profile", ""]) | json_values,
    }))
    payload = draw(st.one_of(st.builds(lambda: b64url(_dumps(claims).encode())), segment))
    signature = draw(st.one_of(segment, st.builds(lambda: real("access_token").split(".")[2])))
    return f"{b64url(_dumps(header).encode())}.{payload}.{signature}"


@st.composite
def mutated_real_jwt(draw: st.DrawFn) -> str:
    parts = real(draw(st.sampled_from(["access_token", "id_token", "no_openid_token"]))).split(".")
    index = draw(st.integers(min_value=0, max_value=2))
    parts[index] = draw(segment)
    return ".".join(parts)


jwt_like = st.one_of(
    st.builds(real, st.sampled_from(["access_token", "id_token", "no_openid_token"])),
    mutated_real_jwt(),
    forged_jwt(),
    st.builds(lambda a, b, c: f"{a}.{b}.{c}", segment, segment, segment),
    st.lists(segment, max_size=5).map(".".join),
    junk_text,
)

scope_param = st.one_of(
    st.lists(st.sampled_from(["openid", "profile", "email", "address", "phone", "offline_access", "OPENID",
                              "openid2", ""]), max_size=4).map(" ".join),
    junk,
)
prompt_param = st.one_of(
    st.lists(st.sampled_from(["none", "login", "consent", "select_account", "create", ""]), max_size=3).map(" ".join),
    junk,
)
challenge_param = st.one_of(
    st.just(CHALLENGE),
    st.builds(lambda b: b64url(hashlib.sha256(b).digest()), st.binary(min_size=1, max_size=8)),
    st.text(alphabet=B64URL_ALPHABET + "=+/", min_size=42, max_size=44),
    junk,
)
app_redirects = st.sampled_from([
    APP_REDIRECT, APP_REDIRECT + "/", APP_REDIRECT + "?x=1", APP_REDIRECT + "#f", "https://APP.example/cb",
    "https://app.example/CB", "http://app.example/cb", "https://app.example.evil.example/cb", "//evil.example/cb",
    "https://evil.example/cb", "https://evil.example@app.example/cb", "https://app.example@evil.example/cb",
    " " + APP_REDIRECT, APP_REDIRECT + " ", "https://app.example/cb/../cb", "https://app.example:443/cb",
    "https://app.example\\@evil.example/cb",
])
# Loopback variants for the native client: only the port may vary (RFC 8252 §7.3). One or two parts
# of "http://127.0.0.1/callback" are changed at a time, so that near misses are tried often.
LOOPBACK_PARTS: dict[str, list[str]] = {
    "scheme": ["http://", "HTTP://", "https://", "http:/", "http:\\\\", "http:///"],
    "userinfo": ["evil.example@", "evil.example\\@", "evil.example%5C@", "a:b@", "evil.example/@", "evil.example#@",
                 "evil.example?@", "evil.example\t@", "@", "evil.example\\\\@"],
    "host": ["[::1]", "localhost", "127.0.0.2", "evil.example", "127.0.0.1.evil.example", "127.1", "0x7f.0.0.1"],
    "port": [":0", ":1234", ":65535", ":65536", ":", ":-1", ":x", ":1234\\@evil.example", ":80@evil.example"],
    "path": ["/callback/", "/Callback", "", "/callback?x=1", "/callback#f", "\\callback", "/callback\\..\\x",
             "/callback/../x", "/%63allback"],
}


@st.composite
def loopback_redirects(draw: st.DrawFn) -> str:
    parts = {"scheme": "http://", "userinfo": "", "host": "127.0.0.1", "port": "", "path": "/callback"}
    for name in draw(st.lists(st.sampled_from(sorted(LOOPBACK_PARTS)), min_size=1, max_size=2, unique=True)):
        parts[name] = draw(st.sampled_from(LOOPBACK_PARTS[name]))
    return "".join(parts[name] for name in ("scheme", "userinfo", "host", "port", "path"))


redirect_param = st.one_of(app_redirects, st.just(NATIVE_REDIRECT), loopback_redirects(), junk)

AUTHORIZE_FIELDS: dict[str, st.SearchStrategy[Value]] = {
    "client_id": mixed("app", "native", "APP", "app ", "nobody"),
    "redirect_uri": redirect_param,
    "response_type": mixed("code", "token", "code id_token", "id_token", "none", "code code"),
    "scope": scope_param,
    "state": st.one_of(st.text(max_size=40), st.binary(max_size=16)),
    "nonce": junk,
    "code_challenge": challenge_param,
    "code_challenge_method": mixed("S256", "plain", "s256"),
    "response_mode": mixed("query", "form_post", "fragment", "query.jwt", "form_post.jwt"),
    "prompt": prompt_param,
    "max_age": mixed("0", "1", "3600", "-1", "1.5", "\u0663", "9999999999", "99999999999", "0x10", " 1"),
    "claims": claims_param,
    "id_token_hint": jwt_like,
    "login_hint": junk,
    "acr_values": junk,
    "display": mixed("page", "popup"),
    "ui_locales": junk,
    "request": junk,
    "request_uri": junk,
}
# Requests start valid (with some of the optional fields) and `mutate` spoils a few fields, so that
# the checks after the client and redirect URI checks, and the code issuance after them, are reached.
OPTIONAL_AUTHORIZE: dict[str, st.SearchStrategy[Value]] = {
    "state": st.text(max_size=20), "nonce": st.text(max_size=20),
    "response_mode": st.sampled_from(["query", "form_post"]),
    "prompt": st.sampled_from(["none", "login", "consent", "login consent", "select_account"]),
}
VALID_AUTHORIZE: dict[str, Value] = {
    "client_id": "app", "redirect_uri": APP_REDIRECT, "response_type": "code", "scope": "openid profile email",
    "code_challenge": CHALLENGE, "code_challenge_method": "S256",
}
PARAM_NAMES = st.sampled_from([*sorted(AUTHORIZE_FIELDS), "grant_type", "code", "code_verifier", "client_secret",
                               "access_token", "post_logout_redirect_uri"])
# Unknown (or repeated) parameters, now and then: a repeat ends the request early.
extra_pairs = st.one_of(st.just([]), st.just([]), st.just([]),
                        st.lists(st.tuples(st.one_of(PARAM_NAMES, junk), junk), min_size=1, max_size=3))


def mutate(draw: st.DrawFn, valid: dict[str, Value], fields: dict[str, st.SearchStrategy[Value]]
           ) -> list[tuple[Value, Value]]:
    """A valid request with a few fields made random or left out (now and then all of them), plus
    unknown or repeated parameters now and then: valid enough to reach the deep branches."""
    params = dict(valid)
    names = sorted(fields)
    how_many = draw(st.sampled_from([0, 1, 1, 1, 2, 2, 3, len(names)]))
    for name in draw(st.permutations(names))[:how_many]:
        if draw(st.sampled_from(["random", "random", "absent"])) == "random":
            params[name] = draw(fields[name])
        else:
            params.pop(name, None)
    return draw(st.permutations([*params.items(), *draw(extra_pairs)]))


@st.composite
def authorize_params(draw: st.DrawFn) -> list[tuple[Value, Value]]:
    valid = dict(VALID_AUTHORIZE)
    if draw(st.booleans()):
        valid.update(client_id="native", redirect_uri=draw(st.one_of(st.just(NATIVE_REDIRECT), loopback_redirects())))
    for name, strategy in OPTIONAL_AUTHORIZE.items():
        if draw(st.booleans()):
            valid[name] = draw(strategy)
    return mutate(draw, valid, AUTHORIZE_FIELDS)


# How many "padN=x" parameters to append: the parsers allow 200 fields (urllib's max_num_fields).
padding = st.sampled_from([0, 0, 0, 0, 0, 3, 199, 201])


def encode(pairs: list[tuple[Value, Value]], pad: int = 0) -> str:
    return urlencode([*pairs, *((f"pad{i}", "x") for i in range(pad))])


# --------------------------------------------------------------------------------------------------
# Oracles.


def assert_no_crash(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    for marker in TRACEBACK_MARKERS:
        assert marker not in response.text, response.text[:500]


def expected_params(pairs: list[tuple[Value, Value]]) -> dict[str, str]:
    """The parameters as the server sees them (same decoding, empty values absent)."""
    return {k: v for k, v in parse_qsl(encode(pairs), keep_blank_values=True) if v != ""}


def browser_target(url: str) -> tuple[str, str, str]:
    """(scheme, host, path) as a WHATWG URL parser (a browser) reads an absolute http(s) URL."""
    url = re.sub(r"[\t\n\r]", "", url).strip("\x00- ")
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*):(.*)$", url, re.S)
    if not match:
        return "", "", url
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme not in ("http", "https"):
        return scheme, "", rest
    rest = rest.lstrip("/\\")
    end = re.search(r"[/\\?#]", rest)
    authority, tail = (rest[:end.start()], rest[end.start():]) if end else (rest, "")
    host = authority.rsplit("@", 1)[-1]
    host = host if host.startswith("[") and host.endswith("]") else host.rsplit(":", 1)[0]
    path = re.split(r"[?#]", tail, maxsplit=1)[0].replace("\\", "/")
    return scheme, host.lower(), path


def assert_client_target(target: str, client_id: str | None) -> None:
    """The authorization response goes to the client's registered redirect URI and nowhere else."""
    if client_id == "native":
        assert browser_target(target) == ("http", "127.0.0.1", "/callback"), f"open redirect: {target!r}"
    else:
        assert client_id == "app", target
        assert target == APP_REDIRECT or target.startswith(APP_REDIRECT + "?"), f"open redirect: {target!r}"
        assert browser_target(target)[:2] == ("https", "app.example"), f"open redirect: {target!r}"


def assert_authorization_response(response: httpx.Response, params: dict[str, str]) -> None:
    """RFC 6749 §4.1.2 / §4.1.2.1 with RFC 9207 `iss`, by redirect or by form_post."""
    assert "code" in params or "error" in params, params
    if "error" in params:
        assert params["error"] in AUTHORIZE_ERRORS, params
        assert DESCRIPTION.match(params.get("error_description", "")), params
    assert params.get("iss") == ISSUER, params


def check_authorize(response: httpx.Response, pairs: list[tuple[Value, Value]]) -> None:
    assert_no_crash(response)
    sent = expected_params(pairs)
    content_type = response.headers.get("content-type", "")
    if response.status_code == 400:
        assert content_type.startswith("text/html"), content_type
        assert "location" not in response.headers, response.headers["location"]
        return
    # Past the redirect URI check, the request's redirect_uri is where the browser will be sent (now,
    # or after login and consent): it must be the registered one as a browser reads it.
    assert_client_target(sent.get("redirect_uri", ""), sent.get("client_id"))
    if response.status_code == 303:
        location = response.headers["location"]
        if location.startswith("/interaction/"):
            assert re.fullmatch(r"/interaction/[A-Za-z0-9_\-]+", location), location
            return
        assert_client_target(location, sent.get("client_id"))
        params = dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))
        assert_authorization_response(response, params)
        assert params.get("state") == sent.get("state"), (params, sent.get("state"))
        return
    # form_post (OAuth 2.0 Form Post Response Mode): an auto-submitted form to the redirect URI.
    assert response.status_code == 200, (response.status_code, response.text[:300])
    assert content_type.startswith("text/html"), content_type
    assert "location" not in response.headers
    assert sent.get("response_mode") == "form_post", sent.get("response_mode")
    action = re.search(r'<form method="post" action="([^"]*)"', response.text)
    assert action, response.text[:500]
    assert_client_target(html.unescape(action.group(1)), sent.get("client_id"))
    fields = {html.unescape(k): html.unescape(v)
              for k, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', response.text)}
    assert_authorization_response(response, fields)
    assert fields.get("state") == sent.get("state"), (fields, sent.get("state"))


def check_json_error(response: httpx.Response, allowed: frozenset[str]) -> dict[str, Any]:
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str), body
    assert body["error"] in allowed, body
    assert response.headers.get("cache-control") == "no-store", response.headers
    if "error_description" in body:
        assert isinstance(body["error_description"], str), body
        assert DESCRIPTION.match(body["error_description"]), f"error_description outside RFC 6749 §5.2: {body}"
    return body


# --------------------------------------------------------------------------------------------------
# /authorize


# Minimal reproductions of what this test found (kept as explicit examples).
NATIVE_FORM_POST = {**VALID_AUTHORIZE, "client_id": "native", "response_mode": "form_post",
                    "redirect_uri": "http://evil.example\\@127.0.0.1/callback"}


@AUTHORIZE_SETTINGS
@given(pairs=authorize_params(), logged_in=st.booleans(), pad=padding)
@example(pairs=list(VALID_AUTHORIZE.items()), logged_in=False, pad=201)  # > max_num_fields: 500
@example(pairs=[*VALID_AUTHORIZE.items(), ("claims", "[" * DEEP)], logged_in=False, pad=0)  # RecursionError: 500
@example(pairs=list(NATIVE_FORM_POST.items()), logged_in=False, pad=0)  # the form_post goes to evil.example
def test_authorize_get(harness: Harness, pairs: list[tuple[Value, Value]], logged_in: bool, pad: int) -> None:
    cookie = harness.session_cookie if logged_in else None
    response = harness.run(harness.send("GET", "/authorize?" + encode(pairs, pad), cookie=cookie))
    check_authorize(response, pairs)


form_content_types = st.sampled_from([
    "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8",
    "Application/X-WWW-Form-Urlencoded", "application/json", "text/plain", "multipart/form-data; boundary=x", None,
])


@AUTHORIZE_SETTINGS
@given(pairs=authorize_params(), logged_in=st.booleans(),
       content_type=st.one_of(st.just("application/x-www-form-urlencoded"), form_content_types),
       garbage=st.one_of(st.just(b""), st.binary(max_size=16)), pad=padding)
@example(pairs=[*VALID_AUTHORIZE.items(), ("claims", "[" * DEEP)], logged_in=False,
         content_type="application/x-www-form-urlencoded", garbage=b"", pad=0)  # RecursionError: 500
@example(pairs=list(NATIVE_FORM_POST.items()), logged_in=False, content_type="application/x-www-form-urlencoded",
         garbage=b"", pad=0)  # the form_post goes to evil.example
def test_authorize_post(harness: Harness, pairs: list[tuple[Value, Value]], logged_in: bool,
                        content_type: str | None, garbage: bytes, pad: int) -> None:
    cookie = harness.session_cookie if logged_in else None
    headers: dict[str, str | bytes] = {"content-type": content_type} if content_type else {}
    body = encode(pairs, pad).encode() + garbage
    response = harness.run(harness.send("POST", "/authorize", content=body, headers=headers, cookie=cookie))
    assert_no_crash(response)
    if garbage:  # the parameters are not what the plain encoding says; only the safety properties hold
        if response.status_code == 303 and not response.headers["location"].startswith("/interaction/"):
            client_id = dict(parse_qsl(body.decode("utf-8", "replace"))).get("client_id")
            assert_client_target(response.headers["location"], client_id)
        return
    check_authorize(response, pairs)


# --------------------------------------------------------------------------------------------------
# /token

TOKEN_FIELDS: dict[str, st.SearchStrategy[Value]] = {
    "grant_type": mixed("authorization_code", "refresh_token", "client_credentials", "password",
                        "urn:ietf:params:oauth:grant-type:device_code", "AUTHORIZATION_CODE"),
    "code": st.one_of(st.just(FRESH_CODE), junk),
    "redirect_uri": st.one_of(st.sampled_from([APP_REDIRECT, NATIVE_REDIRECT, "http://127.0.0.1:99/callback"]),
                              app_redirects, junk),
    "code_verifier": mixed(VERIFIER, "x" * 43, "x" * 129, "x" * 42, VERIFIER + " "),
    "client_id": mixed("app", "native", "nobody", "app "),
    "client_secret": mixed(SECRET, SECRET + "x", "wrong"),
    "scope": scope_param,
    "refresh_token": junk,
    "resource": junk,
    "username": junk,
    "password": junk,
}
VALID_TOKEN: dict[str, Value] = {"grant_type": "authorization_code", "code": FRESH_CODE,
                                 "redirect_uri": APP_REDIRECT, "code_verifier": VERIFIER}

header_bytes = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b""))
latin1_text = st.text(alphabet=st.characters(max_codepoint=255, exclude_characters="\r\n\x00"), max_size=40)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


authorization_headers = st.one_of(
    st.none(),
    st.just(basic("app", SECRET)),
    st.just(basic("app", SECRET)),
    st.builds(basic, st.sampled_from(["app", "native", "nobody", "app%20", ""]),
              st.sampled_from([SECRET, "wrong", "", "%ZZ", "a:b"])),
    st.builds(basic, st.text(max_size=10), st.text(max_size=10)),
    st.builds(lambda b: "Basic " + base64.b64encode(b).decode(), st.binary(max_size=30)),
    st.builds(lambda scheme, value: f"{scheme} {value}", st.sampled_from(["Basic", "basic", "BASIC", "Bearer", "x"]),
              latin1_text),
    latin1_text,
    header_bytes,
)


@st.composite
def token_request(draw: st.DrawFn) -> tuple[bytes, str | bytes | None, str | bytes | None, str]:
    """(body, content type, Authorization header, client the fresh code is issued to)."""
    pairs = mutate(draw, VALID_TOKEN, TOKEN_FIELDS)
    if pairs and draw(st.integers(0, 9)) == 0:  # a repeated parameter
        pairs.append(draw(st.sampled_from(pairs)))
    body = encode(pairs).encode()
    shape = draw(st.sampled_from(["form", "form", "form", "garbage", "binary", "large", "many"]))
    if shape == "garbage":
        body += draw(st.binary(min_size=1, max_size=16))
    elif shape == "binary":
        body = draw(st.binary(max_size=64))
    elif shape == "large":
        body += b"&pad=" + b"x" * 70_000
    elif shape == "many":
        body += b"".join(b"&p%d=1" % i for i in range(201))
    content_type = draw(st.one_of(st.just("application/x-www-form-urlencoded"), form_content_types, latin1_text,
                                  header_bytes))
    authorization = draw(authorization_headers)
    code_client = draw(st.sampled_from(["app", "native"]))
    return body, content_type, authorization, code_client


@PROPERTY_SETTINGS
@given(request=token_request())
@example(request=(b"grant_type=authorization_code", "application/x-www-form-urlencoded", "Basic \xe9", "app"))
@example(request=(b"%01=a&%01=b", "application/x-www-form-urlencoded", None, "app"))  # error_description charset
def test_token(harness: Harness, request: tuple[bytes, str | bytes | None, str | bytes | None, str]) -> None:
    body, content_type, authorization, code_client = request
    placeholder = urlencode({"": FRESH_CODE})[1:].encode()
    if placeholder in body:
        body = body.replace(placeholder, harness.run(harness.fresh_code(code_client)).encode())
    headers: dict[str, str | bytes] = {}
    if content_type is not None:
        headers["content-type"] = content_type
    if authorization is not None:
        headers["authorization"] = authorization
    response = harness.run(harness.send("POST", "/token", content=body, headers=headers))
    assert_no_crash(response)
    assert response.headers.get("cache-control") == "no-store", response.headers
    if response.status_code == 200:
        token = response.json()
        assert token["token_type"] == "Bearer" and token["access_token"], token
        return
    assert 400 <= response.status_code < 500, response.status_code
    body_json = check_json_error(response, TOKEN_ERRORS)
    if response.status_code == 401:
        assert "www-authenticate" in response.headers, (body_json, response.headers)
    if body_json["error"] == "invalid_client":
        assert response.status_code == 401, (response.status_code, body_json)
        assert "www-authenticate" in response.headers, (body_json, response.headers)


# --------------------------------------------------------------------------------------------------
# /userinfo

bearer_headers = st.one_of(
    st.none(),
    st.builds(lambda scheme, token: f"{scheme} {token}",
              st.sampled_from(["Bearer", "bearer", "BEARER", "Bearer ", "DPoP", "Basic"]), jwt_like),
    st.builds(lambda token: f"Bearer {token}".encode(), jwt_like),  # raw UTF-8 bytes in the header
    latin1_text,
    header_bytes,
)


@st.composite
def userinfo_request(draw: st.DrawFn) -> tuple[str, str, bytes | None, dict[str, str | bytes]]:
    method = draw(st.sampled_from(["GET", "POST"]))
    headers: dict[str, str | bytes] = {}
    authorization = draw(bearer_headers)
    if authorization is not None:
        headers["authorization"] = authorization
    url = "/userinfo"
    if draw(st.integers(0, 5)) == 0:
        url += "?" + encode([("access_token", draw(jwt_like)), *draw(extra_pairs)])
    body = None
    if method == "POST":
        pairs: list[tuple[Value, Value]] = []
        if draw(st.booleans()):
            pairs.append(("access_token", draw(jwt_like)))
        pairs += draw(extra_pairs)
        body = encode(pairs).encode() + draw(st.one_of(st.just(b""), st.binary(max_size=8)))
        content_type = draw(st.one_of(st.just("application/x-www-form-urlencoded"), form_content_types))
        if content_type is not None:
            headers["content-type"] = content_type
    return method, url, body, headers


def check_userinfo(response: httpx.Response) -> None:
    assert_no_crash(response)
    if response.status_code == 200:
        claims = response.json()
        assert claims["sub"] == "user-alice", claims
        assert response.headers.get("cache-control") == "no-store", response.headers
        return
    assert 400 <= response.status_code < 500, response.status_code
    body = check_json_error(response, frozenset({"invalid_request", "invalid_token", "insufficient_scope"}))
    challenge = response.headers.get("www-authenticate", "")
    if response.status_code == 401:
        assert challenge.startswith("Bearer"), (body, response.headers)
    if body["error"] == "invalid_token":
        assert response.status_code == 401, (response.status_code, body)
    if body["error"] == "insufficient_scope":
        assert response.status_code == 403 and challenge.startswith("Bearer"), (response.status_code, body)


@PROPERTY_SETTINGS
@given(request=userinfo_request())
@example(request=("POST", "/userinfo", b"%01=a&%01=b", {"content-type": "application/x-www-form-urlencoded"}))
@example(request=("GET", "/userinfo", None, {"authorization": "Bearer " + b64url(b"[" * DEEP) + ".e30.e30"}))
def test_userinfo(harness: Harness, request: tuple[str, str, bytes | None, dict[str, str | bytes]]) -> None:
    method, url, body, headers = request
    check_userinfo(harness.run(harness.send(method, url, content=body, headers=headers)))


# --------------------------------------------------------------------------------------------------
# /logout

LOGOUT_FIELDS: dict[str, st.SearchStrategy[Value]] = {
    "id_token_hint": jwt_like,
    "client_id": mixed("app", "native", "nobody"),
    "post_logout_redirect_uri": st.one_of(
        st.sampled_from([APP_LOGOUT_REDIRECT, APP_LOGOUT_REDIRECT + "/", APP_LOGOUT_REDIRECT + "?x=1",
                         "https://evil.example/bye", "//evil.example", APP_REDIRECT, NATIVE_REDIRECT,
                         "https://app.example/bye\\@evil.example"]),
        junk),
    "state": st.one_of(st.text(max_size=30), st.binary(max_size=8)),
    "ui_locales": junk,
    "logout_hint": junk,
}


@st.composite
def logout_params(draw: st.DrawFn) -> list[tuple[Value, Value]]:
    valid: dict[str, Value] = {"id_token_hint": real("id_token"), "client_id": "app",
                               "post_logout_redirect_uri": APP_LOGOUT_REDIRECT}
    if draw(st.booleans()):
        valid["state"] = draw(LOGOUT_FIELDS["state"])
    return mutate(draw, valid, LOGOUT_FIELDS)


@PROPERTY_SETTINGS
@given(pairs=logout_params(), method=st.sampled_from(["GET", "POST"]), logged_in=st.booleans(), pad=padding)
@example(pairs=[("client_id", "app")], method="GET", logged_in=False, pad=201)  # > max_num_fields: 500
def test_logout(harness: Harness, pairs: list[tuple[Value, Value]], method: str, logged_in: bool, pad: int) -> None:
    cookie = harness.run(harness.new_session()) if logged_in else None
    if method == "GET":
        response = harness.run(harness.send("GET", "/logout?" + encode(pairs, pad), cookie=cookie))
    else:
        response = harness.run(harness.send("POST", "/logout", content=encode(pairs, pad).encode(), cookie=cookie,
                                            headers={"content-type": "application/x-www-form-urlencoded"}))
    assert_no_crash(response)
    assert response.status_code in (200, 303, 400), (response.status_code, response.text[:300])
    assert response.headers.get("content-type", "").startswith("text/html") or response.status_code == 303
    if response.status_code != 303:
        assert "location" not in response.headers, response.headers["location"]
        return
    location = response.headers["location"]
    # Only ever to a registered post-logout redirect URI (RP-Initiated Logout §3), state carried along.
    assert location == APP_LOGOUT_REDIRECT or location.startswith(APP_LOGOUT_REDIRECT + "?"), location
    assert browser_target(location)[:2] == ("https", "app.example"), location
    sent = expected_params(pairs)
    assert sent.get("post_logout_redirect_uri") == APP_LOGOUT_REDIRECT, (location, sent)
    assert dict(parse_qsl(urlsplit(location).query)).get("state") == sent.get("state"), (location, sent)
