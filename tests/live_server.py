"""A real `bastion serve` process on a free port, seeded through the real CLI.

Used by the browser and interop suites, which must talk to the provider the way a user's
browser or a third-party relying party would: over TCP, through the CLI-created state.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


@dataclass(frozen=True)
class LiveServer:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    public_client_id: str
    username: str
    password: str
    env: dict[str, str]

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(self.env, *args, stdin=stdin)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`; reaped either way (no zombie)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "bastion.cli", *args],
        env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"bastion {' '.join(args)} failed: {result.stderr}")
    return result


@contextmanager
def live_server(tmp: Path, redirect_uri: str = "http://127.0.0.1:9/callback") -> Iterator[LiveServer]:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "BASTION_ISSUER": issuer,
        "BASTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bastion.db",
        "BASTION_VAR_DIR": str(tmp),
    }
    run_cli(env, "db", "upgrade")
    secret = "s3cret-" + os.urandom(16).hex()
    run_cli(env, "clients", "create", "--client-id", "interop-app", "--secret", secret,
            "--redirect-uri", redirect_uri, "--scope", "openid profile email address phone offline_access",
            "--name", "Interop App")
    run_cli(env, "clients", "create", "--client-id", "native-app", "--public",
            "--redirect-uri", "http://127.0.0.1/callback", "--name", "Native App")
    run_cli(env, "users", "create", "--username", "alice", "--password", "correct horse battery",
            "--email", "alice@example.com", "--name", "Alice Liddell", "--given-name", "Alice",
            "--family-name", "Liddell")
    log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("bastion serve did not start: " + (tmp / "server.log").read_text())
            time.sleep(0.1)
        yield LiveServer(issuer, "interop-app", secret, redirect_uri, "native-app",
                         "alice", "correct horse battery", env)
    finally:
        stop_process(proc)
        log.close()
