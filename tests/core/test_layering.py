"""`bastion.core` is the protocol core: importing all of it loads neither Starlette nor SQLAlchemy.

Checked in a fresh interpreter, because this test process has already imported both (conftest).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("starlette", "sqlalchemy")

PROBE = """
import importlib, json, pkgutil, sys
import bastion.core
names = ["bastion.core"] + sorted(
    m.name for m in pkgutil.walk_packages(bastion.core.__path__, "bastion.core.", onerror=lambda name: None)
)
culprits = {}
for name in names:
    before = set(sys.modules)
    importlib.import_module(name)
    pulled = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in FORBIDDEN)
    if pulled:
        culprits[name] = pulled
loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
print(json.dumps({"modules": names, "loaded": loaded, "culprits": culprits}))
"""


def _probe() -> dict[str, object]:
    code = f"FORBIDDEN = {FORBIDDEN!r}\n{PROBE}"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"importing bastion.core failed:\n{result.stderr}"
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_core_imports_neither_starlette_nor_sqlalchemy() -> None:
    report = _probe()
    modules = report["modules"]
    assert isinstance(modules, list)
    # The walk did find the package's modules, including subpackages.
    for expected in ("bastion.core.jose", "bastion.core.keys", "bastion.core.pkce", "bastion.core.secrets"):
        assert expected in modules
    assert any(name.count(".") >= 3 for name in modules), modules
    assert report["loaded"] == [], f"bastion.core pulled in {report['loaded']} via {report['culprits']}"
    assert report["culprits"] == {}


def test_probe_detects_a_forbidden_import() -> None:
    """The probe is not vacuous: importing starlette in the same way is noticed."""
    code = "import sys, json, starlette, sqlalchemy\nprint(json.dumps(sorted(m for m in sys.modules if m in %r)))"
    result = subprocess.run(
        [sys.executable, "-c", code % (FORBIDDEN,)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == sorted(FORBIDDEN)
