"""`make bench`: Bastion beside node's oidc-provider 9 (the certified reference), over HTTP, with wrk.

    .venv/bin/python -m bench.run [--quick] [--cases a,b] [--backends sqlite,postgres]
                                  [--seconds 10] [--rounds 2] [--concurrency 16,64] [--warmup 2]

Both servers run on loopback, configured alike (bench/README.md, bench/oidc_provider.mjs): the same
two confidential clients, scopes, RSA-2048 and P-256 keys, resource indicators for ES256 and RS256
JWT access tokens, opaque tokens otherwise, refresh tokens rotated on every use. Each server is one
process pinned to CPU 0 (`taskset -c 0`); wrk (`-t1`, Lua scripts in bench/lua) runs on CPU 1. Each
case is preflighted with httpx (status 200 and the expected token format) before wrk touches it,
warmed up, then measured in alternating rounds (Bastion, oidc-provider, Bastion, ...). Bastion
runs on SQLite and on PostgreSQL (a fresh database, dropped at the end); the refresh and code-flow
cases run again on PostgreSQL with `bastion serve --workers 2` (unpinned). The validator table
comes from bench/validator.py; the footprint table gives resident memory idle and under load and the
time from spawn to the first 200 on discovery.

Prints one Markdown report (also written to bench/results/<date>.md, or <date>-quick.md for
--quick) and a JSON blob (`BENCH_JSON_RESULTS {...}`, also in the .json beside the .md). Every
process it starts is stopped at the end, on failure and on Ctrl-C. Exit status 1 when a case failed
its preflight or its measurement or a refresh run lost a rotation; 2 when the harness could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/run.py`
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.interop.node_op import Browser as NodeBrowser  # noqa: E402

BENCH = ROOT / "bench"
LUA = BENCH / "lua"
RESULTS = BENCH / "results"
NODE_SERVER = BENCH / "oidc_provider.mjs"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

SCOPES = "openid profile email offline_access read write"
USER_SCOPE = "openid profile email"
RESOURCE_ES = "https://api-es.example"
RESOURCE_RS = "https://api-rs.example"
REDIRECT_URI = "http://127.0.0.1:9/bench/callback"
USERNAME = "alice"
PASSWORD = "bench-password-" + "x" * 16
SERVER_CPU = "0"
LOAD_CPU = "1"
START_TIMEOUT = 30.0
HTTP_TIMEOUT = 15.0

CASES: dict[str, str] = {
    "discovery": "GET discovery",
    "cc_es256": "client_credentials, JWT ES256",
    "cc_rs256": "client_credentials, JWT RS256",
    "cc_opaque": "client_credentials, opaque",
    "refresh": "refresh-token rotation",
    "code": "code flow (flows/s)",
    "userinfo": "userinfo",
    "introspect": "introspection",
}
TWO_WORKER_CASES = ("refresh", "code")
EXTRA_SECTIONS = ("workers2", "validator", "footprint")


class BenchError(Exception):
    """The harness or a server did not behave as expected (a preflight failure, a server that won't start)."""


# ---------------------------------------------------------------------------------------------
# Processes: every child is registered here and stopped at exit, whatever happens.

_children: list[subprocess.Popen[Any]] = []
_databases: list[str] = []
_lock = threading.Lock()


def spawn(cmd: list[str], *, env: dict[str, str] | None = None, log: Path | None = None,
          cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    """A child in its own session (process group), so that stopping it also stops what it forked."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed right after Popen
    try:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    with _lock:
        _children.append(proc)
    return proc


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it (a zombie keeps its pid, and so its group id, taken)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None
    except ChildProcessError:
        return True


def stop(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM to the child's process group; then SIGKILL to whatever of the group is left (uvicorn workers, or
    the child itself after `timeout`), sent before the child is reaped so that the group id cannot be reused."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while not _exited(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    with _lock:
        if proc in _children:
            _children.remove(proc)


def cleanup() -> None:
    for proc in list(_children):
        with contextlib.suppress(Exception):
            stop(proc, timeout=5)
    for name in list(_databases):
        with contextlib.suppress(Exception):
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        _databases.remove(name)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Pinning:
    """`taskset -c CPU` prefixes, or nothing on a machine with one CPU or without taskset."""

    def __init__(self) -> None:
        cpus = os.sched_getaffinity(0)
        self.taskset = shutil.which("taskset")
        self.enabled = bool(self.taskset) and {0, 1} <= cpus
        self.note = "" if self.enabled else "no CPU pinning (needs taskset and CPUs 0 and 1)"

    def server(self, pinned: bool = True) -> list[str]:
        return [str(self.taskset), "-c", SERVER_CPU] if self.enabled and pinned else []

    def load(self) -> list[str]:
        return [str(self.taskset), "-c", LOAD_CPU] if self.enabled else []


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class RssSampler:
    """Peak VmRSS of some processes, sampled every 0.2 s in a thread while the `with` block runs."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            for name, pid in self.pids.items():
                value = rss_kib(pid)
                if value is not None:
                    self.peak[name] = max(self.peak.get(name, 0), value)
            if self._stop.wait(0.2):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------------------------
# OAuth helpers


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pkce() -> tuple[str, str]:
    verifier = b64url(secrets.token_bytes(32))
    return verifier, b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def basic(client_id: str, secret: str) -> str:
    # RFC 6749 §2.3.1: form-encode both, then Basic.
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        return json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1]))
    except (ValueError, json.JSONDecodeError):
        return None


def check_jwt_access_token(token: Any, alg: str, audience: str) -> str | None:
    """None when `token` is an RFC 9068 JWT (typ at+jwt) signed `alg` for `audience`; else what is wrong."""
    parsed = jwt_parts(token) if isinstance(token, str) else None
    if parsed is None:
        return f"access token is not a JWT: {str(token)[:60]!r}"
    header, claims = parsed
    if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
        return f"access token typ is {header.get('typ')!r}, not at+jwt"
    if header.get("alg") != alg:
        return f"access token alg is {header.get('alg')!r}, not {alg}"
    aud = claims.get("aud")
    if audience not in (aud if isinstance(aud, list) else [aud]):
        return f"access token aud is {aud!r}, not {audience!r}"
    return None


def check_opaque(token: Any, what: str = "access token") -> str | None:
    if not isinstance(token, str) or len(token) < 20:
        return f"{what} missing or too short: {token!r}"
    if jwt_parts(token) is not None:
        return f"{what} is a JWT, expected an opaque token"
    return None


def same_endpoint(url: str, target: str) -> bool:
    a, b = urlsplit(url), urlsplit(target)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)


def cookie_header(http: httpx.Client, host: str, path: str) -> str:
    """The Cookie header a browser would send to `host` for `path` (RFC 6265 path-match)."""
    pairs = []
    for cookie in http.cookies.jar:
        domain = cookie.domain.lstrip(".")
        if domain not in (host, f"{host}.local") and not host.endswith("." + domain):
            continue
        cpath = cookie.path or "/"
        if path == cpath or path.startswith(cpath.rstrip("/") + "/") or cpath == "/":
            pairs.append(f"{cookie.name}={cookie.value}")
    return "; ".join(pairs)


class BastionBrowser:
    """A cookie-keeping user agent for Bastion's login and consent pages (as tests/web/flow.py posts them)."""

    def __init__(self) -> None:
        self.http = httpx.Client(follow_redirects=False, timeout=HTTP_TIMEOUT)

    def close(self) -> None:
        self.http.close()

    def login(self, url: str, account: str, password: str) -> str:
        """GETs the authorization URL, answers login and consent, returns the redirect to the client."""
        redirect_uri = parse_qs(urlsplit(url).query)["redirect_uri"][0]
        trail: list[str] = []
        response = self.http.get(url)
        for _ in range(12):
            trail.append(f"{response.request.method} {response.url.path} -> {response.status_code}")
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if same_endpoint(location, redirect_uri):
                    return location
                response = self.http.get(location)
                continue
            text = response.text
            csrf = re.search(r'name="csrf_token" value="([^"]*)"', text)
            login = re.search(r'action="(/interaction/[^"]+/login)"', text)
            consent = re.search(r'action="(/interaction/[^"]+/consent)"', text)
            if response.status_code == 200 and csrf and login and 'name="password"' in text:
                response = self.http.post(urljoin(str(response.url), login.group(1)), data={
                    "username": account, "password": password, "csrf_token": csrf.group(1)})
            elif response.status_code == 200 and csrf and consent and 'value="allow"' in text:
                response = self.http.post(urljoin(str(response.url), consent.group(1)), data={
                    "decision": "allow", "csrf_token": csrf.group(1)})
            else:
                raise BenchError(f"Bastion login: unexpected page {response.status_code} {response.url}: "
                                 f"{text[:300]!r}\n  " + "\n  ".join(trail))
        raise BenchError("Bastion login: no redirect to the client after 12 steps\n  " + "\n  ".join(trail))


# ---------------------------------------------------------------------------------------------
# Servers


@dataclass
class ClientCreds:
    client_id: str
    secret: str

    @property
    def authorization(self) -> str:
        return basic(self.client_id, self.secret)


@dataclass
class Server:
    name: str  # "bastion" | "oidc-provider"
    issuer: str
    proc: subprocess.Popen[bytes]
    log: Path
    clients: dict[str, ClientCreds]  # "jwt", "opaque"
    metadata: dict[str, Any] = field(default_factory=dict)
    startup_s: float = 0.0
    idle_rss_kib: int | None = None
    peak_rss_kib: int | None = None
    version: str = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def endpoint(self, name: str) -> str:
        return str(self.metadata[name])

    def path(self, name: str) -> str:
        parts = urlsplit(self.endpoint(name))
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def browser(self) -> BastionBrowser | NodeBrowser:
        return BastionBrowser() if self.name == "bastion" else NodeBrowser(timeout=HTTP_TIMEOUT)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_ready(proc: subprocess.Popen[bytes], issuer: str, log: Path, started: float,
               timeout: float = START_TIMEOUT, poll: float = 0.01) -> tuple[float, dict[str, Any]]:
    """Seconds from `started` to the first 200 on discovery, and the discovery document."""
    url = f"{issuer}/.well-known/openid-configuration"
    deadline = started + timeout
    with httpx.Client(timeout=2.0) as http:
        while True:
            try:
                response = http.get(url)
                if response.status_code == 200:
                    return time.perf_counter() - started, response.json()
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.perf_counter() > deadline:
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise BenchError(f"server for {issuer} did not start (exit {proc.poll()}):\n{tail}")
            time.sleep(poll)


class Launcher:
    """How to start Bastion and oidc-provider for one set-up (database, workers, pinning)."""

    def __init__(self, work: Path, pinning: Pinning, node_peers: Path, database_url: str,
                 clients: dict[str, ClientCreds]) -> None:
        self.work = work
        self.pinning = pinning
        self.node_peers = node_peers
        self.database_url = database_url
        self.clients = clients
        bindir = Path(sys.executable).parent
        self.bastion_cmd = [str(bindir / "bastion")] if (bindir / "bastion").exists() else [
            sys.executable, "-m", "bastion.cli"]

    def bastion_env(self, port: int, alg: str = "ES256") -> dict[str, str]:
        return {
            **os.environ,
            "BASTION_ISSUER": f"http://127.0.0.1:{port}",
            "BASTION_DATABASE_URL": self.database_url,
            "BASTION_VAR_DIR": str(self.work / "var"),
            "BASTION_ACCESS_TOKEN_ALG": alg,
            "BASTION_LOG_LEVEL": "warning",
        }

    def cli(self, *args: str) -> str:
        proc = subprocess.Popen([*self.bastion_cmd, *args], env=self.bastion_env(9), cwd=self.work, text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        with _lock:
            _children.append(proc)
        try:
            out, err = proc.communicate(timeout=120)
        finally:
            stop(proc)  # also on Ctrl-C: gone before its database or folder is removed
        if proc.returncode != 0:
            raise BenchError(f"bastion {' '.join(args)} failed: {err or out}")
        return out

    def seed(self) -> None:
        """The database schema, the two clients and the user, through the real CLI."""
        self.cli("db", "upgrade")
        for kind, creds in self.clients.items():
            self.cli("clients", "create", "--client-id", creds.client_id, "--secret", creds.secret,
                     "--name", f"Bench {kind}", "--redirect-uri", REDIRECT_URI,
                     "--grant-type", "authorization_code", "--grant-type", "refresh_token",
                     "--grant-type", "client_credentials", "--scope", SCOPES,
                     "--resource", RESOURCE_ES, "--resource", RESOURCE_RS,
                     "--access-token-format", kind, "--refresh-token-policy", "always")
        self.cli("users", "create", "--username", USERNAME, "--password", PASSWORD,
                 "--email", "alice@example.com", "--name", "Alice Liddell", "--given-name", "Alice",
                 "--family-name", "Liddell")

    def start_bastion(self, *, alg: str = "ES256", workers: int = 1, pinned: bool = True,
                      tag: str = "") -> Server:
        port = free_port()
        log = self.work / f"bastion-{alg}-{port}{tag}.log"
        cmd = [*self.pinning.server(pinned), *self.bastion_cmd, "serve", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers)]
        started = time.perf_counter()
        proc = spawn(cmd, env=self.bastion_env(port, alg), log=log, cwd=self.work)
        try:
            elapsed, metadata = wait_ready(proc, f"http://127.0.0.1:{port}", log, started)
        except BaseException:
            stop(proc)
            raise
        return Server("bastion", f"http://127.0.0.1:{port}", proc, log, self.clients, metadata, elapsed)

    def start_node(self, *, pinned: bool = True, tag: str = "") -> Server:
        port = free_port()
        config = self.work / f"oidc-provider-{port}.json"
        config.write_text(json.dumps({"port": port, "clients": [
            {"client_id": c.client_id, "client_secret": c.secret, "redirect_uris": [REDIRECT_URI]}
            for c in self.clients.values()]}))
        log = self.work / f"oidc-provider-{port}{tag}.log"
        env = {**os.environ, "NODE_PEERS_DIR": str(self.node_peers), "NODE_ENV": "production"}
        started = time.perf_counter()
        proc = spawn([*self.pinning.server(pinned), "node", str(NODE_SERVER), str(config)], env=env, log=log)
        try:
            elapsed, metadata = wait_ready(proc, f"http://127.0.0.1:{port}", log, started)
        except BaseException:
            stop(proc)
            raise
        server = Server("oidc-provider", f"http://127.0.0.1:{port}", proc, log, self.clients, metadata, elapsed)
        match = re.search(r'"version":"([^"]+)"', log.read_text(errors="replace"))
        server.version = match.group(1) if match else ""
        return server


def measure_idle(server: Server) -> None:
    """VmRSS after start and one request (discovery), once the process has settled."""
    httpx.get(f"{server.issuer}/.well-known/openid-configuration", timeout=HTTP_TIMEOUT)
    time.sleep(0.5)
    server.idle_rss_kib = rss_kib(server.pid)


def startup_best_of(start: Callable[[], Server], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        server = start()
        best = min(best, server.startup_s)
        stop(server.proc)
    return best


async def _pg_admin(sql: str) -> Any:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(PG_ADMIN, timeout=10)
    try:
        if sql.lstrip().upper().startswith(("SELECT", "SHOW")):
            return await conn.fetchval(sql)
        return await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def database(backend: str, work: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{work}/bastion.db"
        return
    name = f"bastion_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    _databases.append(name)
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        # The servers must be gone first (FORCE ends their connections anyway).
        with contextlib.suppress(Exception):
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in _databases:
            _databases.remove(name)


# ---------------------------------------------------------------------------------------------
# Users: a logged-in browser session per server, and the code flow through it


@dataclass
class Session:
    server: Server
    browser: BastionBrowser | NodeBrowser

    @classmethod
    def login(cls, server: Server) -> Session:
        """A fresh browser: login and consent for the opaque client, so that both are remembered."""
        session = cls(server, server.browser())
        session.code_flow("opaque")
        return session

    def close(self) -> None:
        self.browser.close()

    def authorize_url(self, client: str, challenge: str, scope: str = USER_SCOPE) -> str:
        params = {"response_type": "code", "client_id": self.server.clients[client].client_id,
                  "redirect_uri": REDIRECT_URI, "scope": scope, "state": "bench-state",
                  "code_challenge": challenge, "code_challenge_method": "S256"}
        return f"{self.server.endpoint('authorization_endpoint')}?{urlencode(params)}"

    def cookie(self) -> str:
        parts = urlsplit(self.server.endpoint("authorization_endpoint"))
        return cookie_header(self.browser.http, parts.hostname or "127.0.0.1", parts.path)

    def code_flow(self, client: str = "opaque", scope: str = USER_SCOPE) -> dict[str, Any]:
        """The token response of one complete code flow through this browser (login / consent if asked)."""
        verifier, challenge = pkce()
        callback = self.browser.login(self.authorize_url(client, challenge, scope), USERNAME, PASSWORD)
        params = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        if "code" not in params:
            raise BenchError(f"{self.server.name}: no code in the redirect {callback}")
        return exchange(self.server, client, params["code"], verifier)


def exchange(server: Server, client: str, code: str, verifier: str) -> dict[str, Any]:
    response = httpx.post(server.endpoint("token_endpoint"), timeout=HTTP_TIMEOUT, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier,
    }, headers={"Authorization": server.clients[client].authorization})
    if response.status_code != 200:
        raise BenchError(f"{server.name}: code exchange answered {response.status_code}: {response.text[:300]}")
    return dict(response.json())


# ---------------------------------------------------------------------------------------------
# Cases: the preflight (httpx, checks status and token format) and the wrk parameters


@dataclass
class Spec:
    """One wrk invocation's script and parameters (written to a params file the script reads)."""

    script: str
    params: dict[str, str]
    extra_files: dict[str, str] = field(default_factory=dict)  # params key -> file content


@dataclass
class CaseState:
    """What a case keeps per server between invocations (a logged-in session)."""

    session: Session | None = None

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


def _form(**values: str) -> str:
    return urlencode(values)


def simple_spec(method: str, path: str, expect: str, headers: dict[str, str] | None = None,
                body: str | None = None) -> Spec:
    params = {"method": method, "path": path, "expect_status": "200", "expect": expect}
    if body is not None:
        params["body"] = body
        params["header.Content-Type"] = "application/x-www-form-urlencoded"
    for name, value in (headers or {}).items():
        params[f"header.{name}"] = value
    return Spec("simple", params)


def send(server: Server, spec: Spec) -> httpx.Response:
    """What simple.lua sends, sent once with httpx."""
    headers = {k.removeprefix("header."): v for k, v in spec.params.items() if k.startswith("header.")}
    return httpx.request(spec.params["method"], server.issuer + spec.params["path"], headers=headers,
                         content=spec.params.get("body"), timeout=HTTP_TIMEOUT)


def _cc_spec(server: Server, client: str, resource: str | None) -> Spec:
    values = {"grant_type": "client_credentials", "scope": "read"}
    if resource:
        values["resource"] = resource
    return simple_spec("POST", server.path("token_endpoint"), '"access_token"',
                       {"Authorization": server.clients[client].authorization}, _form(**values))


def _user_token(server: Server, state: CaseState) -> str:
    if state.session is None:
        state.session = Session.login(server)
    return str(state.session.code_flow("opaque")["access_token"])


class Case:
    name = ""
    bastion_alg = "ES256"

    def preflight(self, server: Server, state: CaseState) -> None:
        """Raise BenchError unless the server answers this case with 200 and the expected format."""
        raise NotImplementedError

    def spec(self, server: Server, state: CaseState, connections: int, work: Path) -> Spec:
        raise NotImplementedError


class Discovery(Case):
    name = "discovery"

    def spec(self, server: Server, state: CaseState, connections: int, work: Path) -> Spec:
        return simple_spec("GET", "/.well-known/openid-configuration", '"issuer"')

    def preflight(self, server: Server, state: CaseState) -> None:
        response = send(server, self.spec(server, state, 1, Path()))
        if response.status_code != 200 or response.json().get("issuer") != server.issuer:
            raise BenchError(f"discovery answered {response.status_code}: {response.text[:200]}")


class ClientCredentials(Case):
    def __init__(self, name: str, client: str, resource: str | None, alg: str | None) -> None:
        self.name, self.client, self.resource, self.alg = name, client, resource, alg
        if alg:
            self.bastion_alg = alg

    def spec(self, server: Server, state: CaseState, connections: int, work: Path) -> Spec:
        return _cc_spec(server, self.client, self.resource)

    def preflight(self, server: Server, state: CaseState) -> None:
        response = send(server, self.spec(server, state, 1, Path()))
        if response.status_code != 200:
            raise BenchError(f"token endpoint answered {response.status_code}: {response.text[:300]}")
        token = response.json().get("access_token")
        problem = (check_jwt_access_token(token, self.alg, str(self.resource)) if self.alg
                   else check_opaque(token))
        if problem:
            raise BenchError(problem)


class Refresh(Case):
    name = "refresh"

    def preflight(self, server: Server, state: CaseState) -> None:
        # Its own session: replaying a rotated token revokes the grant (at oidc-provider, every chain
        # of that browser's grant), which must not touch the chains measured later.
        session = Session.login(server)
        try:
            first = session.code_flow("opaque")
            old = first.get("refresh_token")
            problem = check_opaque(old, "refresh token")
            if problem:
                raise BenchError(f"code exchange: {problem}")
            response = self._refresh(server, str(old))
            if response.status_code != 200:
                raise BenchError(f"refresh answered {response.status_code}: {response.text[:300]}")
            body = response.json()
            new = body.get("refresh_token")
            problem = check_opaque(body.get("access_token")) or check_opaque(new, "refresh token")
            if problem:
                raise BenchError(f"refresh: {problem}")
            if new == old:
                raise BenchError("refresh: the refresh token was not rotated")
            replay = self._refresh(server, str(old))
            if replay.status_code != 400 or replay.json().get("error") != "invalid_grant":
                raise BenchError(f"a rotated refresh token was accepted again: {replay.status_code} "
                                 f"{replay.text[:200]}")
        finally:
            session.close()

    @staticmethod
    def _refresh(server: Server, token: str) -> httpx.Response:
        return httpx.post(server.endpoint("token_endpoint"),
                          data={"grant_type": "refresh_token", "refresh_token": token},
                          headers={"Authorization": server.clients["opaque"].authorization}, timeout=HTTP_TIMEOUT)

    def spec(self, server: Server, state: CaseState, connections: int, work: Path) -> Spec:
        # Fresh chains for every run, from a fresh browser session: one chain per connection.
        session = Session.login(server)
        try:
            tokens = [str(session.code_flow("opaque")["refresh_token"]) for _ in range(connections)]
        finally:
            session.close()
        return Spec("refresh", {"path": server.path("token_endpoint"),
                                "header.Authorization": server.clients["opaque"].authorization},
                    {"tokens": "\n".join(tokens) + "\n"})


class CodeFlow(Case):
    name = "code"

    def _params(self, server: Server, state: CaseState) -> tuple[dict[str, str], str]:
        if state.session is None:
            state.session = Session.login(server)
        verifier, challenge = pkce()
        url = urlsplit(state.session.authorize_url("opaque", challenge))
        return {
            "authorize": f"{url.path}?{url.query}",
            "cookie": state.session.cookie(),
            "token_path": server.path("token_endpoint"),
            "redirect_uri": quote(REDIRECT_URI, safe=""),
            "code_verifier": verifier,
            "header.Authorization": server.clients["opaque"].authorization,
        }, verifier

    def spec(self, server: Server, state: CaseState, connections: int, work: Path) -> Spec:
        return Spec("code_flow", self._params(server, state)[0])

    def preflight(self, server: Server, state: CaseState) -> None:
        # Exactly what code_flow.lua sends: the session cookie alone, no cookie jar.
        params, verifier = self._params(server, state)
        with httpx.Client(timeout=HTTP_TIMEOUT) as http:
            response = http.get(server.issuer + params["authorize"], headers={"Cookie": params["cookie"]})
        location = response.headers.get("location", "")
        code = parse_qs(urlsplit(location).query).get("code", [""])[0]
        if response.status_code not in (302, 303) or not code or not same_endpoint(location, REDIRECT_URI):
            raise BenchError(f"authorize with the session cookie answered {response.status_code} "
                             f"location={location[:200]!r} (expected a redirect with a code: session or consent "
                             f"not remembered?) {response.text[:200]}")
        tokens = exchange(server, "opaque", code, verifier)
        problem = check_opaque(tokens.get("access_token")) or check_opaque(tokens.get("refresh_token"),
                                                                           "refresh token")
        id_token = jwt_parts(str(tokens.get("id_token", "")))
        if problem is None and (id_token is None or id_token[0].get("alg") != "RS256"):
            problem = f"no RS256 ID token: {str(tokens.get('id_token'))[:60]!r}"
        if problem:
            raise BenchError(f"code exchange: {problem}")


class UserInfo(Case):
    name = "userinfo"

    def spec(self, server: Server, state: CaseState, connections: int, work: Path) -> Spec:
        token = _user_token(server, state)
        return simple_spec("GET", server.path("userinfo_endpoint"), '"sub"', {"Authorization": f"Bearer {token}"})

    def preflight(self, server: Server, state: CaseState) -> None:
        response = send(server, self.spec(server, state, 1, Path()))
        if response.status_code != 200 or "sub" not in response.json():
            raise BenchError(f"userinfo answered {response.status_code}: {response.text[:300]}")


class Introspection(Case):
    name = "introspect"

    def spec(self, server: Server, state: CaseState, connections: int, work: Path) -> Spec:
        token = _user_token(server, state)
        return simple_spec("POST", server.path("introspection_endpoint"), '"active":true',
                           {"Authorization": server.clients["opaque"].authorization},
                           _form(token=token, token_type_hint="access_token"))

    def preflight(self, server: Server, state: CaseState) -> None:
        response = send(server, self.spec(server, state, 1, Path()))
        if response.status_code != 200 or response.json().get("active") is not True:
            raise BenchError(f"introspection answered {response.status_code}: {response.text[:300]}")


def all_cases() -> dict[str, Case]:
    cases: list[Case] = [
        Discovery(),
        ClientCredentials("cc_es256", "jwt", RESOURCE_ES, "ES256"),
        ClientCredentials("cc_rs256", "jwt", RESOURCE_RS, "RS256"),
        ClientCredentials("cc_opaque", "opaque", None, None),
        Refresh(),
        CodeFlow(),
        UserInfo(),
        Introspection(),
    ]
    return {c.name: c for c in cases}


# ---------------------------------------------------------------------------------------------
# wrk


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    detail: str
    raw: dict[str, Any]


class Wrk:
    def __init__(self, pinning: Pinning, work: Path) -> None:
        path = shutil.which("wrk")
        if path is None:
            raise BenchError("wrk is not installed (make bench installs it: apt-get install wrk)")
        self.path = path
        self.pinning = pinning
        self.work = work
        self.count = 0

    def version(self) -> str:
        out = subprocess.run([self.path, "-v"], capture_output=True, text=True, check=False)
        text = (out.stdout + out.stderr).strip().splitlines()
        return text[0].split(" Copyright")[0] if text else "?"

    def run(self, server: Server, spec: Spec, connections: int, seconds: float, case: str) -> Run:
        self.count += 1
        params = dict(spec.params)
        for key, content in spec.extra_files.items():
            path = self.work / f"wrk-{self.count}-{key}.txt"
            path.write_text(content)
            params[key] = str(path)
        params_file = self.work / f"wrk-{self.count}.params"
        for key, value in params.items():
            if "\n" in value or "\r" in value:
                raise BenchError(f"param {key} has a newline")
        params_file.write_text("".join(f"{k}={v}\n" for k, v in params.items()))
        cmd = [*self.pinning.load(), self.path, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               "--timeout", "10s", "--latency", "-s", str(LUA / f"{spec.script}.lua"), server.issuer,
               "--", str(params_file)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.work,
                                start_new_session=True)
        with _lock:
            _children.append(proc)
        try:
            out, err = proc.communicate(timeout=seconds + 60)
        finally:
            stop(proc)
        line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")), None)
        if proc.returncode != 0 or line is None:
            raise BenchError(f"wrk failed (exit {proc.returncode}) for {case} at {server.name}:\n{out}\n{err}")
        raw = json.loads(line.removeprefix("BENCH_JSON "))
        seconds_run = raw["duration_us"] / 1e6
        count = raw["flows"] if spec.script == "code_flow" else raw["requests"]
        socket_errors = sum(v for k, v in raw["errors"].items() if k != "status")
        errors = raw["bad"] + socket_errors  # `missing` (a lost chain) is also counted in `bad`
        detail = raw["first_bad"] + (f" ({raw['missing']} request(s) without a chain)" if raw["missing"] else "")
        if socket_errors:
            detail = (detail + " " if detail else "") + "socket errors " + json.dumps(
                {k: v for k, v in raw["errors"].items() if k != "status" and v})
        return Run(count / seconds_run if seconds_run else 0.0, raw["latency_us"]["p50"] / 1000,
                   raw["latency_us"]["p99"] / 1000, raw["requests"], errors, detail, raw)


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class Options:
    seconds: float
    warmup: float
    rounds: int
    concurrency: list[int]
    cases: list[str]
    backends: list[str]
    sections: list[str]
    quick: bool
    output: Path | None = None


@dataclass
class Row:
    case: str
    concurrency: int
    setup: str
    runs: dict[str, list[Run]] = field(default_factory=lambda: {"bastion": [], "oidc-provider": []})
    failure: str = ""


@dataclass
class Footprint:
    server: str
    setup: str
    idle_kib: int | None
    peak_kib: int | None
    startup_ms: float | None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    footprints: list[Footprint] = field(default_factory=list)
    validator_rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def loud(message: str) -> None:
    bar = "!" * 78
    say(f"\n{bar}\n{message}\n{bar}\n")


SETUP_LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL", "postgres-2w": "PostgreSQL, 2 workers"}


CASE_ERRORS = (BenchError, httpx.HTTPError, AssertionError, KeyError, ValueError)  # HarnessError is an AssertionError


def run_setup(kind: str, opts: Options, pinning: Pinning, wrk: Wrk, node_peers: Path, report: Report) -> None:
    """One set-up: a fresh database, Bastion and oidc-provider started, every selected case measured."""
    backend = "postgres" if kind.startswith("postgres") else "sqlite"
    two_workers = kind == "postgres-2w"
    label = SETUP_LABELS[kind]
    cases = all_cases()
    names = [n for n in opts.cases if n in (TWO_WORKER_CASES if two_workers else cases)]
    want_footprint = "footprint" in opts.sections and not two_workers
    if not names and not want_footprint:
        return
    say(f"\n=== {label}: {', '.join(names) or 'footprint'}")
    clients = {fmt: ClientCreds(f"bench-{fmt}", f"bench-{fmt}-secret-{secrets.token_hex(16)}")
               for fmt in ("jwt", "opaque")}
    work = Path(tempfile.mkdtemp(prefix=f"bastion-bench-{kind}-"))
    failures_before = len(report.failures)
    servers: dict[str, Server] = {}  # Bastion by access-token alg, and "node"
    try:
        with database(backend, work) as url:
            try:
                launcher = Launcher(work, pinning, node_peers, url, clients)
                launcher.seed()
                pinned, workers = not two_workers, 2 if two_workers else 1
                if want_footprint:
                    bastion_start = startup_best_of(lambda: launcher.start_bastion(tag="-startup"))
                    node_start = startup_best_of(lambda: launcher.start_node(tag="-startup"))
                servers["ES256"] = launcher.start_bastion(alg="ES256", workers=workers, pinned=pinned)
                servers["node"] = node = launcher.start_node(pinned=pinned)
                report.versions["oidc-provider"] = node.version
                if want_footprint:
                    measure_idle(servers["ES256"])
                    measure_idle(node)
                for name in names:
                    case = cases[name]
                    if case.bastion_alg not in servers:
                        servers[case.bastion_alg] = launcher.start_bastion(alg=case.bastion_alg, workers=workers,
                                                                            pinned=pinned)
                    peak = name == "cc_es256" and want_footprint
                    measure_case(case, [servers[case.bastion_alg], node], label, opts, wrk, work, report, peak)
                if want_footprint:
                    bastion = servers["ES256"]
                    report.footprints.append(Footprint(f"Bastion ({label})", label, bastion.idle_rss_kib,
                                                       bastion.peak_rss_kib, bastion_start * 1000))
                    report.footprints.append(Footprint(f"oidc-provider (in memory, beside the {label} run)", label,
                                                       node.idle_rss_kib, node.peak_rss_kib, node_start * 1000))
            finally:
                for server in servers.values():  # before the database goes
                    stop(server.proc)
    finally:
        if scan_logs(work, label, report) or len(report.failures) > failures_before:
            say(f"server logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def measure_case(case: Case, pair: list[Server], label: str, opts: Options, wrk: Wrk, work: Path, report: Report,
                 peak: bool) -> None:
    """Preflight at both servers, warm-up, then the alternating rounds; failures are recorded, not raised."""
    name = case.name
    rows = {c: Row(name, c, label) for c in opts.concurrency}
    report.rows.extend(rows.values())
    states = {server.name: CaseState() for server in pair}
    server = pair[0]
    try:
        try:
            for server in pair:
                say(f"--- {name} preflight at {server.name}")
                case.preflight(server, states[server.name])
        except CASE_ERRORS as exc:
            message = f"{label} / {name} / {server.name}: preflight failed: {exc}"
            loud("PREFLIGHT FAILED: " + message + f"\n--- server log (tail)\n{server.log_tail()}")
            report.failures.append(message)
            for row in rows.values():
                row.failure = f"preflight failed at {server.name}"
            return
        for server in pair:  # warm-up, at the highest concurrency
            spec = case.spec(server, states[server.name], max(opts.concurrency), work)
            wrk.run(server, spec, max(opts.concurrency), opts.warmup, name)
        unit = "flows/s" if name == "code" else "req/s"
        for round_ in range(opts.rounds):
            for conc in opts.concurrency:
                for server in pair:
                    spec = case.spec(server, states[server.name], conc, work)
                    sampler = RssSampler({"x": server.pid}) if peak and conc == max(opts.concurrency) else None
                    with sampler or contextlib.nullcontext():
                        result = wrk.run(server, spec, conc, opts.seconds, name)
                    if sampler is not None and sampler.peak.get("x"):
                        server.peak_rss_kib = max(server.peak_rss_kib or 0, sampler.peak["x"])
                    rows[conc].runs[server.name].append(result)
                    flag = f"  ERRORS {result.errors}: {result.detail}" if result.errors else ""
                    say(f"    round {round_ + 1} c{conc:<3} {server.name:14} {result.rps:10,.1f} {unit}  "
                        f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms{flag}")
                    if result.errors and name == "refresh":
                        message = (f"{label} / refresh c{conc} / {server.name}: {result.errors} failed "
                                   f"refresh(es) out of {result.requests}: {result.detail}")
                        loud("REFRESH ROTATION FAILURE (exactly-once violated or chain lost): " + message)
                        report.failures.append(message)
    except CASE_ERRORS as exc:
        message = f"{label} / {name} / {server.name}: failed while measuring: {exc}"
        loud(message + f"\n--- server log (tail)\n{server.log_tail()}")
        report.failures.append(message)
        for row in rows.values():
            row.failure = row.failure or f"failed while measuring at {server.name}"
    finally:
        for state in states.values():
            state.close()


LOG_TROUBLE = re.compile(r"Traceback|\bERROR\b|server_error|Exception|CRITICAL")


def scan_logs(work: Path, label: str, report: Report) -> bool:
    """Errors the servers logged during a set-up (a bench run should log none): noted in the report."""
    found = False
    for log in sorted(work.glob("*.log")):
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if LOG_TROUBLE.search(ln)]
        if lines:
            found = True
            server = "Bastion" if log.name.startswith("bastion") else "oidc-provider"
            note = (f"{label}: {server} logged {len(lines)} error line(s) in {log.name} "
                    f"(kept in {work}), first: `{lines[0].strip()[:200]}`")
            report.notes.append(note)
            loud(note)
    return found


def run_validator(opts: Options, pinning: Pinning, report: Report) -> None:
    from bench import validator

    if opts.quick:
        validator.ROUNDS, validator.SECONDS_PER_ROUND = 1, 0.2
    say("\n=== in-process validator (bench/validator.py)" + (" on CPU 0" if pinning.enabled else ""))
    before = os.sched_getaffinity(0)
    if pinning.enabled:
        os.sched_setaffinity(0, {int(SERVER_CPU)})
    try:
        report.validator_rows = validator.measure()
    finally:
        os.sched_setaffinity(0, before)


# ---------------------------------------------------------------------------------------------
# Output


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _best(runs: list[Run]) -> Run | None:
    return max(runs, key=lambda r: r.rps) if runs else None


def results_table(report: Report) -> str:
    lines = ["| case | conc. | Bastion backend | Bastion /s | p50 ms | p99 ms | oidc-provider /s | p50 ms | p99 ms "
             "| Bastion / oidc-provider |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report.rows:
        label = CASES[row.case]
        if row.failure:
            lines.append(f"| {label} | {row.concurrency} | {row.setup} | **{row.failure}** | | | | | | |")
            continue
        b, n = _best(row.runs["bastion"]), _best(row.runs["oidc-provider"])
        cells = []
        for server, best in (("bastion", b), ("oidc-provider", n)):
            if best is None:
                cells += ["—", "—", "—"]
                continue
            errors = sum(r.errors for r in row.runs[server])
            flag = f" ⚠ {errors} errors" if errors else ""
            cells += [_fmt_rate(best.rps) + flag, f"{best.p50_ms:.2f}", f"{best.p99_ms:.2f}"]
        ratio = f"**{b.rps / n.rps:.2f}×**" if b and n and n.rps else "—"
        lines.append(f"| {label} | {row.concurrency} | {row.setup} | {' | '.join(cells)} | {ratio} |")
    return "\n".join(lines)


def footprint_table(report: Report) -> str:
    lines = ["| server | idle RSS MiB | peak RSS under load MiB (client_credentials ES256, highest conc.) "
             "| spawn → first 200 on discovery, ms (best of 3) |", "|---|---:|---:|---:|"]

    def mib(kib: int | None) -> str:
        return f"{kib / 1024:.1f}" if kib else "—"

    for f in report.footprints:
        startup = f"{f.startup_ms:.0f}" if f.startup_ms is not None else "—"
        lines.append(f"| {f.server} | {mib(f.idle_kib)} | {mib(f.peak_kib)} | {startup} |")
    return "\n".join(lines)


def machine_info(wrk: Wrk, pg: bool) -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True, check=False).stdout.strip()
    info = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} CPUs",
        "kernel": platform.release(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "bastion": f"{importlib.metadata.version('bastion')} ({commit or '?'}{', modified' if dirty else ''})",
        "python": platform.python_version(),
        "uvicorn": importlib.metadata.version("uvicorn") + " (" + ", ".join(
            f"{m} {'yes' if importlib.util.find_spec(m) else 'no'}" for m in ("uvloop", "httptools")) + ")",
        "cryptography": importlib.metadata.version("cryptography"),
        "node": node,
        "wrk": wrk.version(),
        "sqlite": sqlite3.sqlite_version,
    }
    if pg:
        with contextlib.suppress(Exception):
            info["postgresql"] = str(asyncio.run(_pg_admin("SHOW server_version")))
    return info


def render(report: Report, opts: Options, pinning: Pinning) -> str:
    from bench import validator

    v = report.versions
    header = [
        f"# Bastion vs oidc-provider — {v.get('date', '')}" + (" (--quick)" if opts.quick else ""),
        "",
        f"- Machine: {v.get('cpu')}; kernel {v.get('kernel')}; load average at start {v.get('load average at start')}",
        f"- Bastion {v.get('bastion')}; Python {v.get('python')}; uvicorn {v.get('uvicorn')}; "
        f"cryptography {v.get('cryptography')}; SQLite {v.get('sqlite')}"
        + (f"; PostgreSQL {v['postgresql']}" if "postgresql" in v else ""),
        f"- oidc-provider {v.get('oidc-provider', '?')} on node {v.get('node')}; {v.get('wrk')}",
        f"- {opts.seconds:g} s per measurement after a {opts.warmup:g} s warm-up, {opts.rounds} alternating round(s), "
        f"concurrency {', '.join(map(str, opts.concurrency))}; best round shown (requests/s, and its p50 / p99)",
        "- " + (f"Servers one process each on CPU {SERVER_CPU} (`taskset -c {SERVER_CPU}`), wrk -t1 on CPU {LOAD_CPU}"
                if pinning.enabled else pinning.note),
    ]
    notes = [
        "Notes:",
        "- Bastion signs every JWT access token with one algorithm (`BASTION_ACCESS_TOKEN_ALG`), not one per "
        "resource: it runs twice, with ES256 (every case but one) and with RS256 (client_credentials RS256), "
        "on the same database. oidc-provider signs per resource (`https://api-es.example` ES256, "
        "`https://api-rs.example` RS256) in one process.",
        "- Bastion chooses JWT or opaque access tokens per client, not per resource: both servers have two "
        "identical confidential clients, `bench-jwt` (Bastion: JWT) and `bench-opaque` (Bastion: opaque); "
        "oidc-provider issues an opaque token whenever no resource is asked for, whichever client asks.",
        "- Refresh, code flow, UserInfo and introspection use `bench-opaque` without a resource: opaque "
        "access tokens, RS256 ID tokens and a refresh token on both. Each refresh run starts with one fresh "
        "chain per connection; any failed refresh is a correctness failure.",
        "- The code flow alternates authorize (with the session cookie; consent remembered) and token "
        "requests; the rate is completed flows/s and p50 / p99 are per request.",
        "- oidc-provider keeps everything in its own in-memory adapter over an unbounded map (its default store, "
        "an LRU of 1,000 entries, evicts live refresh tokens at concurrency 64), no persistence; Bastion "
        "writes to SQLite or PostgreSQL. PostgreSQL itself is not pinned.",
        "- \"PostgreSQL, 2 workers\" rows: `bastion serve --workers 2` and oidc-provider (one process; its "
        "memory adapter cannot be shared) both unpinned, wrk still on CPU 1.",
        *[f"- {n}" for n in report.notes],
    ]
    if report.failures:
        notes.append("\n**Failures:**\n" + "\n".join(f"- {f}" for f in report.failures))
    parts = ["\n".join(header), "## HTTP (wrk)", results_table(report) if report.rows else "(no case run)"]
    if report.validator_rows:
        parts += [f"## In-process JWT validation (bench/validator.py, {validator.ROUNDS} round(s) of "
                  f"{validator.SECONDS_PER_ROUND:g} s, best)", validator.table(report.validator_rows)]
    if report.footprints:
        parts += ["## Footprint", footprint_table(report)]
    parts.append("\n".join(notes))
    return "\n\n".join(parts) + "\n"


def as_json(report: Report, opts: Options) -> dict[str, Any]:
    return {
        "versions": report.versions,
        "options": {"seconds": opts.seconds, "warmup": opts.warmup, "rounds": opts.rounds,
                    "concurrency": opts.concurrency, "quick": opts.quick},
        "http": [{"case": r.case, "concurrency": r.concurrency, "setup": r.setup, "failure": r.failure or None,
                  "runs": {s: [{"rate": x.rps, "p50_ms": x.p50_ms, "p99_ms": x.p99_ms, "requests": x.requests,
                                "errors": x.errors, "detail": x.detail} for x in runs] for s, runs in r.runs.items()}}
                 for r in report.rows],
        "validator": report.validator_rows,
        "footprint": [f.__dict__ for f in report.footprints],
        "failures": report.failures,
    }


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 s measurements, 1 s warm-up, 1 round, concurrency 16")
    parser.add_argument("--cases", help=f"comma-separated, of: {', '.join([*CASES, *EXTRA_SECTIONS])} "
                        "(default: all; 'workers2' is the 2-worker PostgreSQL set of refresh and code)")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument("--seconds", type=float, help="whole seconds per measurement (default 10; --quick 2)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per case and server (default 2; --quick 1)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 2; --quick 1)")
    parser.add_argument("--concurrency", help="comma-separated connection counts (default 16,64; --quick 16)")
    parser.add_argument("--output", type=Path, help="the Markdown report (default bench/results/<date>[-quick].md)")
    args = parser.parse_args(argv)
    selected = [s.strip() for s in (args.cases or ",".join([*CASES, *EXTRA_SECTIONS])).split(",") if s.strip()]
    unknown = set(selected) - set(CASES) - set(EXTRA_SECTIONS)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if set(backends) - {"sqlite", "postgres"}:
        parser.error("--backends takes sqlite and/or postgres")
    concurrency = [int(c) for c in (args.concurrency or ("16" if args.quick else "16,64")).split(",")]
    opts = Options(
        seconds=args.seconds or (2.0 if args.quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0),
        rounds=args.rounds or (1 if args.quick else 2),
        concurrency=concurrency, cases=[c for c in CASES if c in selected], backends=backends,
        sections=[s for s in EXTRA_SECTIONS if s in selected], quick=args.quick, output=args.output)
    return opts


def ensure_node_peers() -> Path:
    result = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-node-peers.sh")], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise BenchError(f"scripts/ensure-node-peers.sh failed:\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`cmd &`)
    pinning = Pinning()
    report = Report()
    if pinning.enabled:
        # The orchestrator (preparation, sampling) stays off the servers' CPU.
        os.sched_setaffinity(0, {int(LOAD_CPU)})
    else:
        report.notes.append(pinning.note)
    work = Path(tempfile.mkdtemp(prefix="bastion-bench-wrk-"))
    try:
        wrk = Wrk(pinning, work)
        node_peers = ensure_node_peers()
        if "postgres" in opts.backends:
            try:
                asyncio.run(_pg_admin("SELECT 1"))
            except Exception as exc:
                raise BenchError(f"PostgreSQL is not reachable at {PG_ADMIN} ({exc}); "
                                 "run with --backends sqlite") from exc
        report.versions = machine_info(wrk, "postgres" in opts.backends)
        if "validator" in opts.sections:
            run_validator(opts, pinning, report)
        kinds = list(opts.backends)
        if "postgres" in opts.backends and "workers2" in opts.sections:
            kinds.append("postgres-2w")
        for kind in kinds:
            run_setup(kind, opts, pinning, wrk, node_peers, report)
    except KeyboardInterrupt:
        say("\ninterrupted: stopping every server")
        cleanup()
        return 130
    except BenchError as exc:
        say(f"bench: {exc}")
        cleanup()
        return 2
    finally:
        cleanup()
        shutil.rmtree(work, ignore_errors=True)

    text = render(report, opts, pinning)
    blob = as_json(report, opts)
    print(text)
    print("BENCH_JSON_RESULTS " + json.dumps(blob, separators=(",", ":")))
    suffix = "-quick" if opts.quick else ""
    output = opts.output or RESULTS / f"{dt.date.today().isoformat()}{suffix}.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    output.with_suffix(".json").write_text(json.dumps(blob, indent=2) + "\n")
    say(f"\nwritten: {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output} (and .json)")
    if report.failures:
        loud("FAILURES:\n" + "\n".join(report.failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
