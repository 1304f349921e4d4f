"""Issue #13's acceptance on a small corpus in CI: `scripts/defect_corpus.py --quick` runs
~40 seeded defect cases (mutated cfgs, weights, images, labels, lists, .data files, tool
arguments, write faults, a SIGINT during training) through the command line and finds no
traceback, no hang and no exit 0 with non-finite or corrupted output or a false message.
The whole corpus (about 1000 cases) is `python scripts/defect_corpus.py --out DIR`."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import defect_corpus as dc  # noqa: E402


def test_the_quick_corpus_has_no_bad_outcome(tmp_path):
    out = tmp_path / "corpus"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "defect_corpus.py"),
                           "--out", str(out), "--quick", "--jobs", "2"],
                          capture_output=True, text=True, timeout=600)
    report = json.loads((out / "report.json").read_text())
    cases = report["cases"]
    assert len(cases) >= 35
    assert {case["category"] for case in cases} == set(dc.QUICK_PER_CATEGORY)
    bad = [f"{c['outcome']} {c['id']} {c['name']}: {c['detail']}" for c in cases
           if c["outcome"] in dc.BAD]
    assert not bad, "\n".join(bad)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # the cases really ran: both clean errors and successes among them
    outcomes = {case["outcome"] for case in cases}
    assert {"ok", "error"} <= outcomes


def _signature(folder, seed):
    """Each case's name, argv and input files, with the corpus folder taken out."""
    found = []
    for case in dc.generate(folder, seed=seed, quick=True):
        files = {}
        for parent, _dirs, names in os.walk(case.folder):
            for name in names:
                with open(os.path.join(parent, name), "rb") as handle:
                    files[os.path.relpath(os.path.join(parent, name), case.folder)] = \
                        handle.read().replace(folder.encode(), b"<out>")
        found.append((case.category, case.name,
                      [arg.replace(folder, "<out>") for arg in case.argv], files))
    return found


def test_the_corpus_is_reproducible(tmp_path):
    first = _signature(str(tmp_path / "a"), 5)
    assert first == _signature(str(tmp_path / "b"), 5)
    assert first != _signature(str(tmp_path / "c"), 6)


@pytest.mark.parametrize("stderr, outcome", [
    ("Traceback (most recent call last):\n  File x\nValueError: boom\n", "traceback"),
    ("darknet_py: x.cfg:3: [net] width=abc: expected an integer\n", "error"),
    ("something went wrong\n", "unclear"),
])
def test_the_classifier_of_runs(tmp_path, stderr, outcome):
    case = dc.Case("c0", "cfg", "n", ["forward"], str(tmp_path))
    run = dict(rc=1, stdout="", stderr=stderr, hung=False, orphans=[], seconds=0.1)
    assert dc.classify(case, run)[0] == outcome


def test_the_classifier_catches_bad_exit_zeros(tmp_path):
    import numpy as np
    weights = tmp_path / "w.weights"
    weights.write_bytes(np.array([0, 2, 0, 0, 0], "<i4").tobytes()
                        + np.array([1.0, np.nan], "<f4").tobytes())
    case = dc.Case("c0", "cfg", "n", ["partial"], str(tmp_path),
                   expect=[("weights", str(weights))])
    run = dict(rc=0, stdout="", stderr="", hung=False, orphans=[], seconds=0.1)
    assert dc.classify(case, run) == ("bad-output", f"{weights}: 1 of 2 values non-finite")
    case = dc.Case("c0", "cfg", "n", ["partial"], str(tmp_path))
    run["stdout"] = f"Saving weights to {tmp_path}/missing.weights\n"
    assert dc.classify(case, run)[0] == "false-message"
    run["stdout"] = "dog: nan%\n"
    assert dc.classify(case, run)[0] == "bad-output"
    run.update(stdout="", hung=True)
    assert dc.classify(case, run)[0] == "hang"
