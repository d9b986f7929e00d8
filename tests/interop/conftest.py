"""Fixtures shared by the interop tests: the pinned node peers from npm."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENSURE_NODE_PEERS = REPO / "scripts" / "ensure-node-peers.sh"


@pytest.fixture(scope="session")
def node_peers() -> Path:
    """Installs (once, cached in .cache/node-peers/) the node packages pinned in tests/interop/package.json.

    Returns the install directory; its node_modules holds openid-client, oidc-provider, ...
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("the interop tests need Node.js >= 20 and npm on PATH")
    result = subprocess.run(
        ["bash", str(ENSURE_NODE_PEERS)], cwd=REPO, capture_output=True, text=True, timeout=110, check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"scripts/ensure-node-peers.sh failed ({result.returncode}):\n{result.stderr}\n{result.stdout}"
        )
    peers = Path(result.stdout.strip().splitlines()[-1])
    assert (peers / "node_modules" / "openid-client" / "package.json").is_file(), peers
    return peers


@pytest.fixture(scope="session")
def node_op(node_peers: Path):  # -> Iterator[NodeOP]
    """node's certified oidc-provider 9 on 127.0.0.1 (tests/interop/node_op.py), one per session:
    for testing a relying party against a provider that is not Bastion."""
    from tests.interop.node_op import NodeOP

    with NodeOP(node_peers) as op:
        yield op
