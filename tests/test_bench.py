"""`bench`: its figures are consistent with each other, it runs from the command line, the
throughput plot is a real chart, --vs times the engines alternately with a pause before each
timed run, and --vs opencv (when OpenCV < 5 is installed) and --vs onnxruntime (when
onnxruntime is) compare the same network. No speed is asserted: speed targets live in
docs/BENCHMARKS.md."""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from darknet_py import bench, plot
from darknet_py.ops import numpy_ops
from darknet_py.network import parse_network_cfg

CFG = str(ROOT / "cfg/tiny-train-test.cfg")


def test_bench_figures_are_consistent():
    out = io.StringIO()
    result = bench.bench(CFG, batch=2, device="cpu", train=True, layers=True, runs=2,
                         warmup=1, out=out)
    seconds = result["forward_seconds"]
    assert seconds > 0 and result["images_per_second"] == pytest.approx(2 / seconds)
    assert result["gflops"] == pytest.approx(result["bflops_per_image"] * 2 / seconds)
    assert result["train_seconds"] > 0
    assert result["ceilings"]["gemm_gflops"] > 0 and result["ceilings"]["copy_gbs"] > 0
    rows = result["layers"]
    assert [row["index"] for row in rows] == list(range(len(rows)))
    assert sum(row["share"] for row in rows) == pytest.approx(1.0)
    conv = next(row for row in rows if row["type"] == "convolutional")
    assert conv["gflops"] > 0 and conv["bytes"] > 0
    ceilings = result["ceilings"]
    for row in rows:   # the roofline time is the slower of compute and memory at the ceilings
        bound = max(row["gflops"] * row["forward_seconds"] / ceilings["gemm_gflops"],
                    row["bytes"] / 1e9 / ceilings["copy_gbs"])
        assert row["roofline_fraction"] == pytest.approx(bound / row["forward_seconds"])
        assert row["roofline_fraction"] > 0
    # -train with -layers times each layer's backward too, inside a real training step
    backward = [row["backward_seconds"] for row in rows]
    assert all(seconds > 0 for seconds in backward)
    text = out.getvalue()
    assert "; backward " in text
    assert "inference:" in text and "training:" in text and "GEMM ceiling" in text
    assert f"GEMMs by {numpy_ops.gemm_library()}" in text


def test_bench_names_the_blas_kernels_in_use(monkeypatch):
    """bench's machine line says which BLAS ran and, for OpenBLAS, which of its kernels:
    the name OpenBLAS itself reports, which is the one OPENBLAS_CORETYPE forced if set
    (some machines force slower kernels: docs/BENCHMARKS.md)."""
    from darknet_py.ops import cpu_kernels
    corename = cpu_kernels.openblas_corename()
    if corename is None:
        pytest.skip("NumPy's BLAS here is not OpenBLAS")
    forced = os.environ.get("OPENBLAS_CORETYPE", "").strip()
    if forced:   # OpenBLAS loaded with it (the environment was read at NumPy's import)
        assert corename.lower() == forced.lower()
        assert numpy_ops.gemm_library().endswith(
            f", {corename} kernels (OPENBLAS_CORETYPE={forced})")
    assert f", {corename} kernels" in numpy_ops.gemm_library()
    assert numpy_ops.gemm_library().lower().startswith(("scipy-openblas", "openblas"))
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    assert numpy_ops.gemm_library().endswith(f", {corename} kernels")


def test_random_weights_give_finite_outputs():
    """darknet's initial rolling variance (0) overflows at inference; bench's random
    weights use variance 1 so that every engine computes finite numbers."""
    net = parse_network_cfg(CFG, batch=1, device="cpu")
    net.ensure_initialized()
    assert all(np.all(layer.rolling_variance == 0) for layer in net.layers
               if getattr(layer, "rolling_variance", None) is not None)
    net = bench.random_network(CFG, batch=1, device="cpu")
    assert all(np.all(layer.rolling_variance == 1) for layer in net.layers
               if getattr(layer, "rolling_variance", None) is not None)
    x = np.random.default_rng(0).random((1, 3, net.height, net.width), dtype=np.float32)
    with np.errstate(all="raise"):
        output = net.forward(x)
    assert np.all(np.isfinite(output)) and np.abs(output).max() > 0


def test_line_chart_draws_each_series(tmp_path):
    path = plot.line_chart(tmp_path / "chart.png",
                           {"inference": [(1, 10.0), (2, 18.0), (4, 30.0)],
                            "training": [(1, 3.0), (2, 5.0), (4, 6.0)]},
                           "title", "batch size", "images/s")
    image = Image.open(path).convert("RGB")
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 16)}
    assert plot.COLOURS[0] in colours and plot.COLOURS[1] in colours
    with pytest.raises(ValueError):
        plot.line_chart(tmp_path / "empty.png", {}, "t", "x", "y")


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "darknet_py", "bench", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_cli_sweep_writes_plot_and_json(tmp_path):
    result = run_cli(CFG, "-nogpu", "-batches", "1,2", "-runs", "1", "-plot", "sweep.png",
                     "-json", "sweep.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "batch  inference img/s" in result.stdout
    image = Image.open(tmp_path / "sweep.png")
    assert image.format == "PNG" and image.size == (720, 440)
    runs = json.loads((tmp_path / "sweep.json").read_text())["runs"]
    assert [run["batch"] for run in runs] == [1, 2]


@pytest.mark.parametrize("args,message", [
    (("-batches", "1,x"), "-batches: expected batch sizes"),
    (("-batches", "0"), "expected positive batch sizes"),
    (("-plot", "a.png"), "give -batches too")])
def test_cli_rejects_bad_sweeps(tmp_path, args, message):
    result = run_cli(CFG, "-nogpu", *args, cwd=tmp_path)
    assert result.returncode != 0 and message in result.stderr


def test_alternating_timing_interleaves_the_engines(monkeypatch):
    """--vs times one run of each engine in turn (warm-ups included) and reports each
    engine's median; every timed run (not the warm-ups) starts after a pause of
    PAUSE_SECONDS, outside the timed interval, so that the other engine's spinning BLAS
    threads have gone idle. Here the clock is fake: each call takes a known number of
    ticks, and sleeping does not move it."""
    from darknet_py import bench_compare
    clock, calls = [0.0], []

    def engine(name, ticks):
        def run():
            calls.append(name)
            clock[0] += ticks.pop(0)
        return run
    monkeypatch.setattr(bench_compare.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(bench_compare.time, "sleep", lambda seconds: calls.append(seconds))
    ours = engine("ours", [9.0, 1.0, 5.0, 3.0])
    theirs = engine("theirs", [9.0, 2.0, 8.0, 4.0])
    assert bench_compare._alternating(ours, theirs, warmup=1, runs=3) == (3.0, 4.0)
    pause = bench_compare.PAUSE_SECONDS
    assert pause >= 0.2   # longer than OpenBLAS's ~0.1 s of spinning
    assert calls == ["ours", "theirs"] + [pause, "ours", pause, "theirs"] * 3


def test_vs_names_the_engines():
    from darknet_py import bench_compare
    net = bench.random_network(CFG, batch=1, device="cpu")
    x = np.zeros((1, net.channels, net.height, net.width), dtype=np.float32)
    with pytest.raises(RuntimeError, match="opencv, torch, onnxruntime"):
        bench_compare.compare("tensorflow", CFG, None, x, net, lambda: None, 1, 1)


def test_vs_onnxruntime_runs_the_same_network(monkeypatch):
    pytest.importorskip("onnx", reason="--vs onnxruntime needs onnx")
    pytest.importorskip("onnxruntime", reason="--vs onnxruntime needs onnxruntime")
    from darknet_py import bench_compare
    monkeypatch.setattr(bench_compare, "PAUSE_SECONDS", 0.01)   # keep the test fast
    net = bench.random_network(CFG, batch=2, device="cpu")
    x = np.random.default_rng(0).random((2, net.channels, net.height, net.width),
                                        dtype=np.float32)
    result = bench_compare.compare("onnxruntime", CFG, None, x, net, lambda: None, 1, 2)
    other = result["onnxruntime"]
    assert other["seconds"] > 0 and other["ours_seconds"] > 0 and other["device"] == "cpu"
    # the same float32 network with batch norm folded: agrees to float rounding
    assert 0 <= other["rel_l2"] < 1e-5
    out = io.StringIO()
    bench.report({"cfg": CFG, "batch": 2, "width": net.width, "height": net.height,
                  "backend": "numpy", "device": "cpu", "bflops_per_image": net.bflops(),
                  "ceilings": {"gemm_gflops": 1.0, "copy_gbs": 1.0}, "forward_seconds": 1.0,
                  "images_per_second": 2.0, "gflops": 1.0, "peak_host_mb": 1.0,
                  "vs": result}, out)
    assert "vs onnxruntime (timed alternately with darknet_py, in this process)" \
        in out.getvalue()


def test_process_harness_alternates_workers_with_a_pause(monkeypatch):
    """bench_processes.alternate asks each worker for one timed run in turn, after a
    pause each, and takes each one's median seconds and highest peak RSS."""
    from darknet_py import bench_processes
    calls = []

    class Worker:
        def __init__(self, engine, answers):
            self.engine, self.answers = engine, answers

        def ask(self, command):
            calls.append((self.engine, command))
            return self.answers.pop(0)
    monkeypatch.setattr(bench_processes.time, "sleep", lambda seconds: calls.append(seconds))
    ours = Worker("darknet_py", ["1.0 100", "5.0 300", "3.0 200"])
    theirs = Worker("onnxruntime", ["2.0 50", "8.0 40", "4.0 60"])
    medians, peaks = bench_processes.alternate([ours, theirs], runs=3, pause=0.25)
    assert medians == {"darknet_py": 3.0, "onnxruntime": 4.0}
    assert peaks == {"darknet_py": 300, "onnxruntime": 60}
    assert calls == [0.25, ("darknet_py", "run"), 0.25, ("onnxruntime", "run")] * 3


def test_vs_onnxruntime_in_separate_processes(monkeypatch):
    """The default harness: darknet_py and onnxruntime each in a worker process built from
    the same seed, so both run the same weights on the same input (their outputs agree to
    float rounding), timed alternately."""
    pytest.importorskip("onnx", reason="--vs onnxruntime needs onnx")
    pytest.importorskip("onnxruntime", reason="--vs onnxruntime needs onnxruntime")
    from darknet_py import bench_compare, bench_processes
    monkeypatch.setattr(bench_compare, "PAUSE_SECONDS", 0.01)
    result = bench_processes.compare_processes("onnxruntime", CFG, None, batch=2, warmup=1,
                                               runs=2)
    other = result["onnxruntime"]
    assert other["processes"] and other["device"] == "cpu"
    assert other["seconds"] > 0 and other["ours_seconds"] > 0
    assert other["peak_mb"] > 0 and other["ours_peak_mb"] > 0
    assert 0 <= other["rel_l2"] < 1e-5


def test_process_harness_reports_a_failing_worker(tmp_path):
    """A worker that cannot build its engine is one clear error naming the engine and the
    worker's last line, not a hang."""
    from darknet_py import bench_processes
    bad = tmp_path / "bad.cfg"
    bad.write_text("[net]\nwidth=32\nheight=32\nchannels=3\n[nonsense]\n")
    with pytest.raises(RuntimeError, match="bench worker for darknet_py failed: .*nonsense"):
        bench_processes.compare_processes("onnxruntime", str(bad), None, batch=1, warmup=1,
                                          runs=1)


def test_vs_opencv_runs_the_same_network():
    cv2 = pytest.importorskip("cv2", reason="--vs opencv needs opencv-python-headless<5")
    if not hasattr(cv2, "dnn") or int(cv2.__version__.split(".")[0]) >= 5:
        pytest.skip("OpenCV 5 dropped the darknet importer")
    result = bench.bench(CFG, batch=1, device="cpu", runs=2, warmup=1, vs="opencv",
                         out=io.StringIO())
    other = result["vs"]["opencv"]
    assert other["seconds"] > 0 and other["ours_seconds"] > 0
    # OpenCV computes in another order (and Winograd): close, not equal
    assert 0 < other["rel_l2"] < 1e-3
