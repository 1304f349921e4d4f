"""Issue #13's write errors and tools: every writer (final saves, partial, forward --dump,
voc_label, detector valid's results=, calc_anchors -png, export, detector test's image and
JSON) meets every write fault (a full disk, a read-only folder, no permission, a missing
folder, a file where a folder should be, a folder where the file should be) with one line
naming the path and the reason, the previous file intact; the tools refuse what cannot work
in one line.

The faults come from scripts/defect_corpus.py (the same cases the corpus runs): a full disk
and a read-only folder are small tmpfs mounts where root can mount one (a full disk is
RLIMIT_FSIZE otherwise; read-only is chmod 555 for other users and skipped for root without
mounts), no permission is chmod 555 (as root with the DAC-override capabilities dropped
through setpriv, in a subprocess). The rest run the command line in this process.
"""
import errno
import os
import sys

import numpy as np
import pytest

import darknet_py
from darknet_py.__main__ import main, os_error_line
from darknet_py.errors import DarknetError, WriteError
from darknet_py.fileio import atomic_write_with
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import defect_corpus as dc  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    found = dc.Corpus(str(tmp_path_factory.mktemp("corpus")), seed=0)
    dc.make_fixtures(found)
    found.can_mount = dc.can_mount_tmpfs(os.path.join(found.out, ".probe"))
    return found


def _run(case, setup, monkeypatch, capsys):
    """(exit status, stderr) of the case's command line: in this process, or in a
    subprocess when the fault needs one (dropped capabilities, a file size limit)."""
    if setup is not None and (setup.prefix or setup.preexec):
        run = dc.run_plain(case, setup.prefix, setup.preexec)
        return run["rc"], run["stderr"]
    monkeypatch.chdir(case.folder)
    capsys.readouterr()
    status = main(case.argv)
    return status, capsys.readouterr().err


# Writers that would save onto the destination itself (not through
# fileio.atomic_write_with), so that a full disk truncates the previous file: none now.
NOT_ATOMIC = {}


def _writer_faults():
    for writer in dc.WRITERS:
        for fault in dc.FAULTS:
            why = NOT_ATOMIC.get((writer, fault))
            yield pytest.param(writer, fault, id=f"{writer}-{fault}",
                               marks=[pytest.mark.xfail(reason=why)] if why else [])


@pytest.mark.parametrize("writer, fault", _writer_faults())
def test_a_write_fault_is_one_line_and_keeps_the_previous_file(corpus, writer, fault,
                                                               monkeypatch, capsys):
    if fault == "readonly" and not corpus.can_mount and os.geteuid() == 0:
        pytest.skip("a read-only folder for root needs a tmpfs mount, which fails here")
    if writer == "export":
        pytest.importorskip("onnx")
    case = dc.fault_case(corpus, fault, writer)
    setup = dc.FaultSetup(case.fault, case.fault_dir, case.intact, corpus.can_mount) \
        if case.fault else None
    if setup is not None and setup.method is None:
        setup.undo()
        pytest.skip(f"{fault} cannot be simulated here")
    try:
        status, err = _run(case, setup, monkeypatch, capsys)
        # read before the tmpfs goes
        leftovers = [name for name in os.listdir(case.fault_dir) if name.startswith(".tmp-")] \
            if case.fault else []
        kept = {path: open(path, "rb").read() for path in case.intact}
    finally:
        if setup is not None:
            setup.undo()
    assert "Traceback" not in err
    where = dict(case.expect)["names"]
    if case.must is None:   # a missing folder that the command creates
        assert status == 0, err
        assert os.path.isdir(where)
        return
    errors = dc.error_lines(err)
    assert status == 1 and len(errors) == 1, err
    assert where in errors[0], errors[0]
    assert kept == case.intact
    assert not leftovers


def test_the_write_fault_matrix_covers_every_writer():
    """The writers the issue lists each have their faults above."""
    assert set(dc.WRITERS) >= {"detector train final save", "classifier train final save",
                               "partial", "forward --dump", "voc_label -out",
                               "detector valid results=", "calc_anchors -png", "export"}
    assert set(dc.FAULTS) == {"full", "readonly", "perm", "missing-folder", "file-as-folder",
                              "folder-as-file"}


def test_atomic_write_with_keeps_the_old_file_on_a_full_disk(tmp_path, monkeypatch):
    target = tmp_path / "x.npy"
    target.write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(WriteError, match="x.npy: cannot write: No space left on device"):
        atomic_write_with(str(target), lambda handle: np.save(handle, np.zeros(3)))
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]
    monkeypatch.undo()
    atomic_write_with(str(target), lambda handle: np.save(handle, np.arange(3.0)))
    assert np.load(target).tolist() == [0.0, 1.0, 2.0]


def test_an_unhandled_os_error_is_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    try:
        os.makedirs(afile)
    except OSError as err:
        assert os_error_line(err) == f"{afile}: a file is in the way where a folder is needed"
    err = PermissionError(errno.EACCES, "Permission denied", "/x/y")
    assert os_error_line(err) == "/x/y: Permission denied"
    err = OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b")
    assert os_error_line(err) == "/a -> /b: Invalid cross-device link"


# ----------------------------------------------------------------------- tools

def test_export_refuses_non_finite_weights(corpus, tmp_path):
    pytest.importorskip("onnx")
    from darknet_py.export_onnx import export
    net = darknet_py.load_network(corpus.f("det.cfg"), corpus.f("det.weights"), batch=1)
    net.layers[2].biases[3] = np.nan
    with pytest.raises(DarknetError, match=r"layer 2 \[convolutional\] biases: 1 of 14 values "
                                           r"are NaN or infinite; nothing exported"):
        export(net, str(tmp_path / "a.onnx"))
    net = darknet_py.load_network(corpus.f("det.cfg"), corpus.f("det.weights"), batch=1)
    net.layers[0].scales[:] = 3e38          # finite, but scale/sqrt(var) overflows float32
    net.layers[0].rolling_variance[:] = 1e-30
    with pytest.raises(DarknetError, match=r"layer 0 \[convolutional\] weights: 108 of 108 "
                                           r"values are NaN or infinite after folding batch"):
        export(net, str(tmp_path / "b.onnx"))
    assert not list(tmp_path.iterdir())


def test_forward_on_an_npz_archive(corpus, tmp_path, capsys):
    source = tmp_path / "x.npy"
    np.savez(tmp_path / "x", a=np.zeros(3), b=np.ones(2))
    os.replace(tmp_path / "x.npz", source)
    assert main(["forward", corpus.f("det.cfg"), "none", str(source), "--dump",
                 str(tmp_path / "d")]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == \
        f"darknet_py: {source}: a .npz archive of arrays (a, b), expected one .npy array"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_voc_label_refuses_non_finite_coordinates(tmp_path, value, capsys):
    import random
    xml = dc.VOC_XML.format(name="img0", w=40, h=30, cls="cat", x0=5, y0=4, x1=value, y1=25)
    root = dc.make_voc(str(tmp_path / "voc"), random.Random(0), {"img0": xml})
    assert main(["voc_label", root, "-out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"darknet_py: {root}/Annotations/img0.xml: <bndbox><xmax> expected a finite number, "
        f"found '{value}'")


@pytest.mark.parametrize("label, shown", [("0 0.5 0.5 inf 0.2", "0.5 0.5 inf 0.2"),
                                          ("1 nan 0.5 0.1 0.1", "nan 0.5 0.1 0.1")])
def test_labels_with_inf_or_nan_are_named_by_every_reader(corpus, tmp_path, capsys, label,
                                                          shown):
    """calc_anchors (k-means would draw centroids with NaN probabilities), map and recall
    read label files through read_label_file, which names the file and line."""
    data = dc.dataset_copy(corpus, str(tmp_path), labels="0 0.5 0.5 0.2 0.2\n" + label + "\n")
    label_file = tmp_path / "labels" / "0.txt"
    for argv in (["calc_anchors", data, "-num_of_clusters", "2"],
                 ["detector", "map", data, corpus.f("det.cfg"), corpus.f("det.weights")],
                 ["detector", "recall", data, corpus.f("det.cfg"), corpus.f("det.weights")]):
        assert main(argv) == 1, argv
        assert capsys.readouterr().err.splitlines()[-1] == \
            f"darknet_py: {label_file}:2: a box with a NaN or infinite value: {shown}"


def test_a_list_with_a_nul_byte(corpus, tmp_path, capsys):
    data = dc.dataset_copy(corpus, str(tmp_path), list_text="\x00\x01 junk\n")
    assert main(dc.train_argv(data, corpus.f("det.cfg"))) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"darknet_py: {tmp_path}/list.txt:1: a NUL byte: the training list is a binary file, "
        "not one entry per line")


def test_a_nul_byte_in_an_image_path():
    from darknet_py.errors import ImageError
    from darknet_py.image import load_image
    with pytest.raises(ImageError, match="the path holds a NUL byte"):
        load_image("a\x00b.jpg")


def test_a_data_file_without_backup_writes_beside_the_working_directory(corpus, tmp_path,
                                                                       monkeypatch, capsys):
    """darknet would write to /backup/ at the filesystem root; here backup/ of the working
    directory, said before training."""
    data = dc.dataset_copy(corpus, str(tmp_path / "set"))
    with open(data) as handle:
        text = "".join(line for line in handle if not line.startswith("backup="))
    with open(data, "w") as handle:
        handle.write(text)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(dc.train_argv(data, corpus.f("det.cfg"))) == 0
    err = capsys.readouterr().err
    assert f"{data} has no 'backup =' line: checkpoints go to {work / 'backup'} (darknet " \
           "would write to /backup/)" in err
    assert (work / "backup" / "det_final.weights").exists()


def test_partial_counts_and_folders(corpus, tmp_path, capsys):
    cfg, weights = corpus.f("det.cfg"), corpus.f("det.weights")
    for count, message in (("-1", "must be at least 1 (found -1)"),
                           ("0", "must be at least 1 (found 0)")):
        assert main(["partial", cfg, weights, str(tmp_path / "p.weights"), count]) == 1
        assert capsys.readouterr().err.strip().endswith(message)
    missing = tmp_path / "no" / "p.weights"
    assert main(["partial", cfg, weights, str(missing), "1"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"darknet_py: {missing}: cannot write: the folder {missing.parent} does not exist")
    # more layers than the network has: all of them, as darknet's partial
    assert main(["partial", cfg, weights, str(tmp_path / "all.weights"), "1000"]) == 0
    with open(weights, "rb") as handle:
        original = handle.read()
    written = (tmp_path / "all.weights").read_bytes()
    assert written[:12] == original[:12] and written[20:] == original[20:]


def test_data_options_name_the_line_of_a_bad_number(tmp_path, capsys):
    from darknet_py.config import read_data_cfg
    from darknet_py.errors import CfgError
    data = tmp_path / "x.data"
    data.write_text("classes = 2\ntop = abc\nnames = a.names\nclasses = 7\n")
    options = read_data_cfg(str(data))
    # darknet's option_find walks the list from its front: the first line counts
    assert options == {"classes": "2", "top": "abc", "names": "a.names"}
    assert f"{data}:4: classes = 7 ignored: line 1 already set classes = 2" in \
        capsys.readouterr().err
    assert options.integer("classes") == 2 and options.integer("missing", 5) == 5
    with pytest.raises(CfgError, match=rf"^{data}:2: top = abc: expected an integer$"):
        options.integer("top")
    with pytest.raises(CfgError, match=rf"^{data}:1: classes = 2: expected at least 3$"):
        options.integer("classes", minimum=3)


@pytest.mark.parametrize("array, message", [
    (np.zeros((0, 3, 32, 32), np.float32), "an array of shape (0, 3, 32, 32), expected"),
    (np.zeros((3, 0, 32), np.float32), "an array of shape (1, 3, 0, 32), expected"),
])
def test_forward_on_an_empty_array(corpus, tmp_path, capsys, array, message):
    np.save(tmp_path / "x.npy", array)
    assert main(["forward", corpus.f("det.cfg"), "none", str(tmp_path / "x.npy"), "--dump",
                 str(tmp_path / "d")]) == 1
    assert message in capsys.readouterr().err


def test_forward_on_values_beyond_float32(corpus, tmp_path, capsys):
    """No numpy RuntimeWarning for the cast: the network says what is wrong."""
    import warnings
    np.save(tmp_path / "x.npy", np.full((3, 32, 32), 1e300))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["forward", corpus.f("det.cfg"), "none", str(tmp_path / "x.npy"),
                     "--dump", str(tmp_path / "d")]) == 0
    assert "the input holds NaN or infinite values" in capsys.readouterr().err


def test_export_batch_zero_is_a_darknet_py_error(corpus, tmp_path, capsys):
    assert main(["export", corpus.f("det.cfg"), "none", str(tmp_path / "m.onnx"),
                 "-batch", "0"]) == 1
    assert capsys.readouterr().err == \
        "darknet_py: export: -batch 0: expected a positive batch size\n"


# ----------------------------------------------------------------------- signals

def test_kill_9_of_the_trainer_leaves_no_loader_worker_behind(corpus):
    case = dc.signal_case(corpus, "SIGKILL", 2, "main", 2)
    result = dc.run_case(case, corpus.can_mount)
    assert result["outcome"] == "ok", result
    assert result["rc"] == -9


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_save_onto_a_full_disk_is_one_line(corpus, signame):
    if not corpus.can_mount:
        pytest.skip("a full disk is a small tmpfs: needs root and mount")
    case = dc.signal_fault_case(corpus, "full", signame)
    result = dc.run_case(case, corpus.can_mount)
    assert result["outcome"] == "error", result
    assert f"{case.fault_dir}/det.backup: cannot write: No space left on device" in \
        result["detail"]


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("from_main_thread", [True, False], ids=["prctl", "watchdog"])
def test_a_loader_worker_never_outlives_its_trainer(tmp_path, from_main_thread):
    """A trainer gone without closing its workers (kill -9): each worker ends too, by the
    kernel's parent-death signal or by its thread watching the parent."""
    import subprocess
    import time
    if not os.path.isdir("/proc"):
        pytest.skip("needs /proc to watch the worker")
    script = ("import os, sys, time\n"
              "from darknet_py.data.loader import _worker_setup\n"
              "pid = os.fork()\n"
              "if pid == 0:\n"
              f"    _worker_setup(os.getppid(), {from_main_thread})\n"
              "    time.sleep(60)\n"
              "    os._exit(0)\n"
              "print(pid, flush=True)\n"
              "time.sleep(0.3)\n"
              "os._exit(0)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    worker = int(done.stdout.split()[0])
    deadline = time.time() + 5
    while _alive(worker) and time.time() < deadline:
        time.sleep(0.1)
    alive = _alive(worker)
    if alive:
        os.kill(worker, 9)
    assert not alive, "the worker outlived its trainer"


@pytest.mark.parametrize("value", ["1e39", "2147483648", "-2147483649"])
def test_a_cfg_integer_beyond_a_c_int(tmp_path, value):
    cfg = tmp_path / "x.cfg"
    cfg.write_text(f"[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=2\n"
                   f"size={value}\n")
    with pytest.raises(DarknetError, match=rf"x.cfg:7: \[convolutional\] option 'size': "
                                           rf"{value} is beyond a 32-bit integer"):
        darknet_py.parse_network_cfg(str(cfg))


@pytest.mark.parametrize("key, value", [("hue", "nan"), ("saturation", "inf"),
                                        ("exposure", "nan")])
def test_non_finite_augmentation_stops_before_the_first_step(corpus, tmp_path, capsys, key,
                                                             value):
    data = dc.dataset_copy(corpus, str(tmp_path))
    cfg = tmp_path / "n.cfg"
    cfg.write_text(dc.DET_CFG.replace("[net]\n", f"[net]\n{key}={value}\n", 1))
    assert main(dc.train_argv(data, str(cfg))) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1] == (f"darknet_py: the cfg's {key}={float(value)}: "
                                             "augmentation needs a finite number (every image "
                                             "would be NaN)")
    assert " avg, " not in captured.out


def test_huge_distortion_factors_warn_nothing():
    import warnings
    from darknet_py.data.augment import distort_image
    im = np.random.default_rng(0).random((3, 4, 5), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = distort_image(im, 0.1, 3e38, 3e38)
    assert out.shape == im.shape and out.dtype == np.float32


def test_a_ctrl_c_while_the_workers_start_is_acted_on_after(monkeypatch):
    """The first submit forks the loader workers, and CPython runs logging's at-fork hook
    in the parent after each fork: a KeyboardInterrupt raised there is printed as
    "Exception ignored" and lost (1 run in ~15 went on training). The submits run with
    the signal held, and the interrupt comes when they are done."""
    import signal
    import time
    from concurrent.futures import ProcessPoolExecutor
    from darknet_py.data import loader as loader_module
    submitted = []
    real_submit = ProcessPoolExecutor.submit

    def submit_and_interrupt(pool, *args, **kwargs):
        if not submitted:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)   # the Python-level handler runs here, in the block
        submitted.append(args)
        return real_submit(pool, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", submit_and_interrupt)
    batches = loader_module.BatchLoader("detection", ["unused.jpg"] * 3, 3, {}, seed=1,
                                        workers=1)
    try:
        with pytest.raises(KeyboardInterrupt):
            batches._submit(32, 32)
        assert len(submitted) == 3   # every job of the batch went out before the interrupt
    finally:
        batches.close()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
