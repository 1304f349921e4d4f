"""`make demo` (darknet_py/demo.py) without its files and without a network: one line
naming what is missing and where to put it, exit status 1, no traceback, no partial file."""
from darknet_py import demo


def test_demo_without_files_or_network_says_where_to_put_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "ROOT", tmp_path)
    missing = tmp_path / "shared" / "tiny.weights"
    monkeypatch.setattr(demo, "FILES", {
        "weights/tiny.weights": (missing, "http://127.0.0.1:9/tiny.weights")})
    assert demo.main() == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("downloading http://127.0.0.1:9/tiny.weights")
    assert err[1].startswith("darknet_py: cannot download http://127.0.0.1:9/tiny.weights (")
    assert err[1].endswith(f"put the file at {tmp_path / 'weights/tiny.weights'} or {missing}")
    assert list((tmp_path / "weights").iterdir()) == []   # no .part left behind

