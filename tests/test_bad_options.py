"""Options that cannot work are one-line errors before anything runs: -max_batches below 1
(a run that would never end), a padded 1x1 convolution (darknet would read past its
input); a strided 1x1 convolution runs as darknet reads it (no im2col) in every path."""
import numpy as np
import pytest

from darknet_py.__main__ import main as cli_main
from darknet_py.errors import CfgError
from darknet_py.network import load_network

NET = """[net]
batch=1
width=16
height=16
channels=3

[convolutional]
filters=4
size=1
stride={stride}
padding={padding}
activation=leaky
"""


@pytest.mark.parametrize("count", ["0", "-3"])
def test_max_batches_below_one(tmp_path, capsys, count):
    cfg = tmp_path / "n.cfg"
    cfg.write_text(NET.format(stride=1, padding=0))
    (tmp_path / "train.txt").write_text("x.jpg\n")
    data = tmp_path / "n.data"
    data.write_text(f"train={tmp_path / 'train.txt'}\nbackup={tmp_path}\n")
    assert cli_main(["detector", "train", str(data), str(cfg), "-max_batches", count]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"-max_batches {count}: expected at least 1 iteration" in err


def test_a_strided_1x1_convolution_reads_its_input_as_darknet(tmp_path):
    """darknet skips im2col for every 1x1 kernel: its gemm reads the first c*out_h*out_w
    floats of the input as a (c, out_h*out_w) matrix. Both inference paths do that."""
    cfg = tmp_path / "n.cfg"
    cfg.write_text(NET.format(stride=2, padding=0))
    x = np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)
    fast_net, exact_net = load_network(str(cfg)), load_network(str(cfg), exact=True)
    exact_net.layers[0].weights[...] = fast_net.layers[0].weights
    exact_net.layers[0].biases[...] = fast_net.layers[0].biases
    layer = fast_net.layers[0]
    # by hand: B = the first 3*64 input floats as (3, 64); out = leaky(W B + b)
    b = x.reshape(-1)[:3 * 64].reshape(3, 64).astype(np.float64)
    ref = layer.weights.reshape(4, 3).astype(np.float64) @ b + layer.biases[:, None]
    ref = np.where(ref > 0, ref, 0.1 * ref).reshape(1, 4, 8, 8)
    for net in (fast_net, exact_net):
        np.testing.assert_allclose(np.array(net.forward(x)), ref, rtol=1e-5, atol=1e-6)


def test_a_padded_1x1_convolution_is_refused(tmp_path):
    cfg = tmp_path / "n.cfg"
    cfg.write_text(NET.format(stride=1, padding=1))
    with pytest.raises(CfgError, match="would read past its input"):
        load_network(str(cfg))


def test_a_plain_1x1_convolution_still_loads(tmp_path):
    cfg = tmp_path / "n.cfg"
    cfg.write_text(NET.format(stride=1, padding=0))
    assert load_network(str(cfg)).layers[0].out_shape == (4, 16, 16)


def test_forward_dump_names_the_first_non_finite_layer(tmp_path, capsys):
    """Untrained batch norm divides by sqrt(0) + 1e-6 at every layer, so values overflow a
    few layers in; the last maxpool turns NaN windows into -FLT_MAX, so the network's
    output looks finite and only the dump shows it: the warning names the first layer that
    went non-finite, which the dumped files themselves must confirm."""
    from PIL import Image
    conv = "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=leaky\n\n"
    cfg = tmp_path / "deep.cfg"
    cfg.write_text("[net]\nbatch=1\nwidth=16\nheight=16\nchannels=3\n\n" + conv * 9
                   + "[maxpool]\nsize=2\nstride=2\n")
    photo = tmp_path / "p.png"
    Image.fromarray((np.arange(16 * 16 * 3) % 251).astype(np.uint8).reshape(16, 16, 3)).save(photo)
    dump = tmp_path / "dump"
    assert cli_main(["forward", str(cfg), "none", str(photo), "--dump", str(dump),
                     "-nogpu"]) == 0
    err = capsys.readouterr().err
    files = sorted(dump.glob("layer_*.npy"))
    first = next(i for i, f in enumerate(files) if not np.isfinite(np.load(f)).all())
    assert np.isfinite(np.load(files[-1])).all()   # the output itself looks finite
    assert f"layer {first} (convolutional) output holds" in err
    assert err.count("NaN or infinite") == 1
