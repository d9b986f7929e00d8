"""Runs one of the node drivers in tests/interop/ against a live Bastion and collects diagnostics."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.live_server import LiveServer

HERE = Path(__file__).resolve().parent


def run_node(
    script: str,
    scenario: str,
    server: LiveServer,
    peers: Path,
    env: Mapping[str, str],
    timeout: float = 30,
) -> tuple[int, dict[str, Any], str]:
    """Runs `node tests/interop/<script> <scenario>`; returns (exit code, its JSON output, diagnostics).

    `env` adds to the environment BASTION_ISSUER and NODE_PEERS_DIR. The diagnostics carry the
    script's stdout and stderr and the tail of the server's log, for assertion messages.
    """
    full_env = {
        **os.environ,
        "NODE_PEERS_DIR": str(peers),
        "BASTION_ISSUER": server.issuer,
        "NODE_NO_WARNINGS": "1",
        **env,
    }
    proc = subprocess.run(
        ["node", str(HERE / script), scenario], env=full_env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        result = {}
    server_log = Path(server.env["BASTION_VAR_DIR"]) / "server.log"
    log_tail = server_log.read_text(errors="replace")[-3000:] if server_log.exists() else ""
    diagnostics = (
        f"node {script} {scenario} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n"
        f"--- stderr\n{proc.stderr}\n--- bastion server.log (tail)\n{log_tail}"
    )
    return proc.returncode, result, diagnostics
