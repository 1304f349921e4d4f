"""Shared fixtures: where ../shared is, and the oracle cases it holds.

Reference data is never copied into the project; tests that need it skip with a reason
when ../shared (beside the project root) is absent.
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# test this checkout's package, whatever another `pip install -e` points at
sys.path.insert(0, str(ROOT))
# the CPU tests compare the NumPy reference with darknet; on a GPU machine the default
# device would be the GPU, so pin it (GPU tests choose their device explicitly)
os.environ.setdefault("DARKNET_PY_DEVICE", "cpu")
SHARED = Path(os.environ.get("DARKNET_PY_SHARED", ROOT.parent / "shared"))
ORACLE = SHARED / "oracle"
DARKNET = SHARED / "darknet"


def need_shared(*parts):
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (../shared is not beside the project)")
    return path


def oracle_cases(tool):
    """Names of the oracle case folders written by `tool` (dn_forward or a training tool)."""
    if not ORACLE.is_dir():
        return []
    names = []
    for case in sorted(ORACLE.iterdir()):
        manifest = case / "manifest.json"
        if manifest.is_file() and json.loads(manifest.read_text())["tool"].startswith(tool):
            names.append(case.name)
    return names


def rel_l2(out, ref):
    out = np.asarray(out, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    return float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30))


@pytest.fixture
def in_darknet_dir(monkeypatch):
    """Run from shared/darknet, as the oracle did: cfgs name data/9k.tree relative to it."""
    need_shared("darknet")
    monkeypatch.chdir(DARKNET)
    return DARKNET
