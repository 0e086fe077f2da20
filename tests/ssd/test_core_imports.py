"""The TensorFlow-free core of ssd: the server imports these without loading TensorFlow or Keras.

Each module is imported in a fresh interpreter, since this test process has usually loaded
TensorFlow already (other tests build models).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CORE_MODULES = (
    "ssd.analysis.health",
    "ssd.analysis.report",
    "ssd.analysis.sizes",
    "ssd.analysis.story",
    "ssd.analysis.tide",
    "ssd.backbones",
    "ssd.checkpoint",
    "ssd.config",
    "ssd.coverage",
    "ssd.data",
    "ssd.evaluate",
    "ssd.geometry",
    "ssd.lifetime",
    "ssd.loader_pool",
    "ssd.precision",
    "ssd.priors",
    "ssd.sections",
)
HEAVY = ("tensorflow", "keras")
ROOT = Path(__file__).resolve().parents[2]  # the repository: ``ssd`` imports from there

_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy})))
"""


def _probe(module: str) -> subprocess.CompletedProcess[str]:
    """Import ``module`` in a fresh interpreter; its last stdout line lists the heavy modules loaded."""
    probe = _PROBE.format(heavy=set(HEAVY))
    return subprocess.run([sys.executable, "-c", probe, module], capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_not_load_tensorflow(module: str) -> None:
    out = _probe(module)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing {module} loaded {loaded[:5]}"


def test_the_probe_sees_tensorflow() -> None:
    """The check itself works: a module that needs TensorFlow is reported."""
    out = _probe("ssd.boxes")
    assert out.returncode == 0, out.stderr
    assert "tensorflow" in json.loads(out.stdout.strip().splitlines()[-1])
