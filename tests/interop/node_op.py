"""A certified OpenID provider (node's oidc-provider, pinned in package.json) for relying-party tests.

Why: a relying-party library tested only against Bastion's own provider can share its bugs. This
harness runs tests/interop/op_server.mjs, node's oidc-provider 9 on 127.0.0.1 with an ephemeral
port, and lets Python tests drive a relying party against it:

- `NodeOP` writes the provider's config (clients, with ids / secrets / redirect URIs chosen here
  and the public key of the private_key_jwt client) to a temporary directory, starts node, reads
  the issuer from the one JSON line node prints, waits for discovery, and stops node cleanly.
- `Browser` plays the user agent over plain HTTP (httpx, its own cookie jar, no JavaScript): it
  answers oidc-provider's development login / consent pages (any login and password work), the
  device-flow user-code pages and the logout confirmation. It stops at the redirect to the
  client's redirect_uri (which it never fetches: no relying party listens there) and returns it.

No timeout here is longer than 15 s. See op_server.mjs for the provider's configuration.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.live_server import stop_process

HERE = Path(__file__).resolve().parent
OP_SERVER = HERE / "op_server.mjs"
STEP_LIMIT = 20
HTTP_TIMEOUT = 10.0
START_TIMEOUT = 15.0
SNIPPET = 800
# oidc-provider's self-submitting form (form_post responses, account switch, verification_uri_complete).
AUTO_SUBMIT_TITLE = "Submitting Callback"

# Resource indicators the provider knows (op_server.mjs): JWT access tokens, scope "read write".
RESOURCE_RS256 = "https://api.example"
RESOURCE_ES256 = "https://api-es.example"

CLIENT_AUTH_METHODS = {
    "basic": "client_secret_basic",
    "post": "client_secret_post",
    "public": "none",
    "private_key_jwt": "private_key_jwt",
}


class HarnessError(AssertionError):
    """The provider or one of its pages did not behave as the harness expected."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class OPClient:
    """One client registered at the node provider."""

    name: str
    client_id: str
    client_secret: str | None
    token_endpoint_auth_method: str
    redirect_uri: str
    post_logout_redirect_uri: str


class NodeOP:
    """node's oidc-provider on 127.0.0.1 (`with NodeOP(peers) as op:` or start()/stop()).

    After start(): `issuer`, `port`, `metadata` (the discovery document), `clients` (OPClient
    by name: "basic", "post", "public", "private_key_jwt"), `private_key` (the P-256 key of the
    private_key_jwt client; its public JWK `public_jwk` carries `kid` = `private_key_kid`, alg
    ES256), `stderr` (what node printed there, for assertion messages).
    """

    private_key_alg = "ES256"

    def __init__(self, node_peers: Path, *, redirect_base: str = "http://127.0.0.1:9/rp") -> None:
        self.node_peers = Path(node_peers)
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.private_key.public_key().public_numbers()
        thumbprint_input = {
            "crv": "P-256", "kty": "EC", "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
        # RFC 7638 thumbprint as the kid: deterministic for the key.
        canonical = json.dumps(thumbprint_input, separators=(",", ":"), sort_keys=True).encode()
        self.private_key_kid = b64url(hashlib.sha256(canonical).digest())
        self.public_jwk: dict[str, str] = {
            **thumbprint_input, "kid": self.private_key_kid, "alg": "ES256", "use": "sig",
        }
        run = uuid.uuid4().hex[:8]
        self.clients: dict[str, OPClient] = {
            name: OPClient(
                name=name,
                client_id=f"{name.replace('_', '-')}-{run}",
                client_secret=None if method in ("none", "private_key_jwt") else f"secret-{name}-{uuid.uuid4().hex}",
                token_endpoint_auth_method=method,
                redirect_uri=f"{redirect_base}/{name}/callback",
                post_logout_redirect_uri=f"{redirect_base}/{name}/logged-out",
            )
            for name, method in CLIENT_AUTH_METHODS.items()
        }
        self.issuer = ""
        self.port = 0
        self.version = ""
        self.metadata: dict[str, Any] = {}
        self._dir: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_at_stop = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The JSON that op_server.mjs reads: the clients' registration metadata."""
        clients = []
        for client in self.clients.values():
            entry: dict[str, Any] = {
                "client_id": client.client_id,
                "token_endpoint_auth_method": client.token_endpoint_auth_method,
                "redirect_uris": [client.redirect_uri],
                "post_logout_redirect_uris": [client.post_logout_redirect_uri],
            }
            if client.client_secret is not None:
                entry["client_secret"] = client.client_secret
            if client.token_endpoint_auth_method == "private_key_jwt":
                entry["jwks"] = {"keys": [self.public_jwk]}
                entry["token_endpoint_auth_signing_alg"] = self.private_key_alg
            clients.append(entry)
        return {"clients": clients}

    def start(self) -> Self:
        if self._proc is not None:
            raise RuntimeError("NodeOP already started")
        if shutil.which("node") is None:
            raise HarnessError("node is not on PATH")
        self._dir = tempfile.mkdtemp(prefix="node-op-")
        config_path = Path(self._dir, "config.json")
        config_path.write_text(json.dumps(self.config(), indent=2))
        env = {**os.environ, "NODE_PEERS_DIR": str(self.node_peers)}
        # stdout / stderr go to files: no pipe to drain, no reader thread; the stdout file holds
        # the one JSON line op_server.mjs prints once listening.
        with open(Path(self._dir, "stdout"), "wb") as out, open(Path(self._dir, "stderr"), "wb") as err:
            self._proc = subprocess.Popen(
                ["node", str(OP_SERVER), str(config_path)], cwd=HERE, env=env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            )
        try:
            self._await_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _await_ready(self) -> None:
        assert self._proc is not None and self._dir is not None
        deadline = time.monotonic() + START_TIMEOUT
        stdout = Path(self._dir, "stdout")
        line = ""
        while time.monotonic() < deadline:
            text = stdout.read_text()
            if "\n" in text:
                line = text.split("\n", 1)[0]
                break
            if self._proc.poll() is not None:
                raise HarnessError(f"op_server.mjs exited {self._proc.returncode} before listening\n{self.stderr}")
            time.sleep(0.05)
        else:
            raise HarnessError(f"op_server.mjs did not start within {START_TIMEOUT} s\n{self.stderr}")
        try:
            started = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HarnessError(f"op_server.mjs printed {line!r}, not JSON\n{self.stderr}") from exc
        self.issuer, self.port, self.version = started["issuer"], started["port"], started.get("version", "")
        with httpx.Client(timeout=2.0) as http:
            while True:
                try:
                    response = http.get(f"{self.issuer}/.well-known/openid-configuration")
                    if response.status_code == 200:
                        self.metadata = response.json()
                        return
                except httpx.TransportError:
                    pass
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise HarnessError(f"no discovery document at {self.issuer}\n{self.stderr}")
                time.sleep(0.05)

    def stop(self) -> None:
        """Terminates node (SIGTERM, then SIGKILL after 5 s), reaps it, removes the temp dir."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, timeout=5)
            self._stderr_at_stop = self.stderr
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def stderr(self) -> str:
        """node's stderr so far (oidc-provider warnings, server_error stacks)."""
        if self._dir is None:
            return self._stderr_at_stop
        path = Path(self._dir, "stderr")
        return path.read_text(errors="replace") if path.exists() else ""

    # -- conveniences ------------------------------------------------------------------------

    def client_assertion(self, audience: str | None = None, *, client: str = "private_key_jwt") -> str:
        """A private_key_jwt client assertion (ES256, kid = private_key_kid) for the named client.

        `audience` defaults to the issuer; oidc-provider also accepts the token endpoint URL or the
        URL of the endpoint the assertion is sent to.
        """
        now = int(time.time())
        client_id = self.clients[client].client_id
        header = {"alg": "ES256", "typ": "JWT", "kid": self.private_key_kid}
        claims = {
            "iss": client_id, "sub": client_id, "aud": audience or self.issuer,
            "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex,
        }
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        r, s = decode_dss_signature(self.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def approve_device(self, user_code: str, account: str = "alice", password: str = "secret") -> None:
        """Approves a device authorization at this provider's /device page (see Browser)."""
        approve_device(f"{self.issuer}/device", user_code, account, password)


# ---------------------------------------------------------------------------------------------
# The user agent


@dataclass
class Form:
    id: str
    method: str
    action: str
    fields: dict[str, str]


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.links: list[str] = []
        self.title = ""
        self._in_title = False
        self._form: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = Form(a.get("id", ""), a.get("method", "get").lower(), a.get("action", ""), {})
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and a.get("name"):
            self._form.fields[a["name"]] = a.get("value", "")
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def _parse(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser


def page_text(html: str) -> str:
    """The visible text of an HTML page (no style, script or tags), for error messages."""
    html = re.sub(r"<(style|script)\b.*?</\1\s*>", " ", html, flags=re.S | re.I)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _same_endpoint(url: str, target: str) -> bool:
    a, b = urlsplit(url), urlsplit(target)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)


class Browser:
    """A cookie-keeping user agent for oidc-provider's pages (reuse it for prompt=none / SSO)."""

    def __init__(self, timeout: float = HTTP_TIMEOUT) -> None:
        self.http = httpx.Client(follow_redirects=False, timeout=timeout)
        self.trail: list[str] = []  # "METHOD url -> status", for error messages

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _request(self, method: str, url: str, data: dict[str, str] | None = None) -> httpx.Response:
        response = self.http.request(method, url, data=data)
        self.trail.append(f"{method} {url} -> {response.status_code}")
        return response

    def _fail(self, what: str, response: httpx.Response | None = None) -> HarnessError:
        trail = "\n  ".join(self.trail[-STEP_LIMIT:])
        page = ""
        if response is not None:
            page = f"\n--- last response {response.status_code} {response.url}\n{page_text(response.text)[:SNIPPET]}"
        return HarnessError(f"{what}\n--- steps\n  {trail}{page}")

    def _submit(self, response: httpx.Response, form: Form, fields: dict[str, str]) -> httpx.Response:
        action = urljoin(str(response.url), form.action or str(response.url))
        if form.method == "post":
            return self._request("POST", action, fields)
        return self._request("GET", f"{action}?{urlencode(fields)}")

    @staticmethod
    def _login_or_consent(
        form: Form, account: str, password: str,
    ) -> dict[str, str] | None:
        prompt = form.fields.get("prompt")
        if prompt == "login":
            return {**form.fields, "login": account, "password": password}
        if prompt == "consent":
            return dict(form.fields)  # "Continue": grants every missing scope, claim and resource scope
        return None

    # -- flows -------------------------------------------------------------------------------

    def login(
        self,
        authorization_url: str,
        account: str = "alice",
        password: str = "secret",
        *,
        redirect_uri: str | None = None,
        deny: bool = False,
    ) -> str:
        """GETs the authorization URL and answers login / consent until the redirect to the client.

        Returns that redirect's URL (code, state, iss, or error=...) without fetching it. Login and
        consent are each skipped when oidc-provider does not ask (existing session / grant, e.g.
        prompt=none with this Browser's cookies). `deny` cancels at the consent page (the client
        then gets error=access_denied). `redirect_uri` is needed only when the authorization URL
        does not carry one (PAR request_uri). With response_mode=form_post, returns the form's
        action with its fields as the query string.
        """
        if redirect_uri is None:
            redirect_uri = dict(parse_qsl(urlsplit(authorization_url).query)).get("redirect_uri")
        if not redirect_uri:
            raise HarnessError("no redirect_uri in the authorization URL: pass redirect_uri=")
        self.trail = []
        response = self._request("GET", authorization_url)
        for _ in range(STEP_LIMIT):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if _same_endpoint(location, redirect_uri):
                    return location
                response = self._request("GET", location)
                continue
            page = _parse(response.text)
            if response.status_code != 200 or not page.forms:
                raise self._fail("the provider showed a page the harness cannot answer (error page?)", response)
            form = page.forms[0]
            if _same_endpoint(urljoin(str(response.url), form.action), redirect_uri):  # response_mode=form_post
                return f"{form.action}?{urlencode(form.fields)}"
            if page.title.strip() == AUTO_SUBMIT_TITLE:  # what a browser's JavaScript would post
                response = self._submit(response, form, dict(form.fields))
                continue
            if deny and form.fields.get("prompt") == "consent":
                abort = next((link for link in page.links if "/abort" in link), None)
                if abort is None:
                    raise self._fail("no abort link on the consent page", response)
                response = self._request("GET", urljoin(str(response.url), abort))
                continue
            fields = self._login_or_consent(form, account, password)
            if fields is None:
                raise self._fail("unexpected form on the way to the redirect_uri", response)
            response = self._submit(response, form, fields)
        raise self._fail(f"no redirect to {redirect_uri} after {STEP_LIMIT} steps")

    def approve_device(
        self,
        verification_uri: str,
        user_code: str,
        account: str = "alice",
        password: str = "secret",
        *,
        deny: bool = False,
    ) -> None:
        """Enters the user code at verification_uri (/device), confirms it, logs in, consents.

        verification_uri_complete works too (the code then comes from the URL).

        Returns on oidc-provider's "Sign-in Success" page. `deny` aborts at the confirmation step
        instead (the device's token polling then gets access_denied) and returns on the page saying
        the sign-in was interrupted. Raises HarnessError with the page on anything else (wrong or
        used code: "The code you entered is incorrect").
        """
        self.trail = []
        origin = urlsplit(verification_uri).netloc
        response = self._request("GET", verification_uri)
        for _ in range(STEP_LIMIT):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if urlsplit(location).netloc != origin:
                    raise self._fail(f"the device flow redirected away from the provider: {location}", response)
                response = self._request("GET", location)
                continue
            html = response.text
            page = _parse(html)
            if response.status_code == 200 and "Sign-in Success" in page.title:
                if deny:
                    raise self._fail("deny=True but the device sign-in succeeded", response)
                return
            if deny and "interrupted" in html:
                return
            if response.status_code != 200 or not page.forms:
                raise self._fail("the device flow ended on a page the harness cannot answer", response)
            if 'class="red"' in html:
                raise self._fail("the provider rejected the user code", response)
            form = page.forms[0]
            if page.title.strip() == AUTO_SUBMIT_TITLE:  # verification_uri_complete, account switch
                fields = dict(form.fields)
            elif form.id == "op.deviceInputForm":
                fields = {**form.fields, "user_code": user_code}
            elif form.id == "op.deviceConfirmForm":
                fields = {**form.fields, **({"abort": "yes"} if deny else {})}
            elif (answer := self._login_or_consent(form, account, password)) is not None:
                fields = answer
            else:
                raise self._fail("unexpected form in the device flow", response)
            response = self._submit(response, form, fields)
        raise self._fail(f"the device flow did not finish after {STEP_LIMIT} steps")

    def logout(self, end_session_url: str) -> str:
        """RP-initiated logout: GETs end_session_url, confirms "Yes, sign me out".

        Returns the URL the provider sends the user to last: the post_logout_redirect_uri (with
        state) when the request named the client (id_token_hint or client_id) and a registered
        post_logout_redirect_uri, else the provider's own /session/end/success page. Not fetched
        when it leaves the provider.
        """
        self.trail = []
        origin = urlsplit(end_session_url).netloc
        response = self._request("GET", end_session_url)
        for _ in range(STEP_LIMIT):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if urlsplit(location).netloc != origin:
                    return location
                response = self._request("GET", location)
                continue
            if response.status_code != 200:
                raise self._fail("the logout ended on an error page", response)
            page = _parse(response.text)
            if not page.forms:
                return str(response.url)
            form = page.forms[0]
            fields = dict(form.fields)
            if form.id == "op.logoutForm":
                fields["logout"] = "yes"  # the "Yes, sign me out" button: ends the whole session
            response = self._submit(response, form, fields)
        raise self._fail(f"the logout did not finish after {STEP_LIMIT} steps")


def login_over_http(authorization_url: str, account: str = "alice", password: str = "secret") -> str:
    """One-shot Browser.login with a fresh cookie jar: returns the callback URL (code, state, iss)."""
    with Browser() as browser:
        return browser.login(authorization_url, account, password)


def approve_device(verification_uri: str, user_code: str, account: str = "alice", password: str = "secret") -> None:
    """One-shot Browser.approve_device with a fresh cookie jar (also NodeOP.approve_device)."""
    with Browser() as browser:
        browser.approve_device(verification_uri, user_code, account, password)


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge), computed by hand."""
    verifier = b64url(os.urandom(32))
    return verifier, b64url(hashlib.sha256(verifier.encode("ascii")).digest())
