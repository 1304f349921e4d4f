"""Acceptance 1 of the core engine: every layer of every forward case in ../shared/oracle
against darknet's own dump.

Two arithmetic modes are checked:
* default (BLAS GEMM): each layer within 1e-4 relative L2, the network output within 1e-5.
  BLAS sums the GEMM's k terms in blocks where darknet sums them in order, so each conv
  differs from darknet's by ~1e-7..1e-6 and the difference grows with depth. In the two
  yolov2-voc-slim cases the region output (after 23 convs, a route and a reorg) lands at
  1.4e-5 and 1.7e-5, so those two need 3e-5; every other final output is under 1e-5.
* exact (darknet's summation order): every layer within 1e-6; in practice the outputs
  are bit-identical except where darknet's GPU-port tree softmax used CUDA's expf (4e-8).
"""
import pytest

from conftest import oracle_cases, rel_l2
from oracle_forward import ForwardCase

CASES = oracle_cases("dn_forward")
LAYER_BOUND = 1e-4
OUTPUT_BOUND = 1e-5
OUTPUT_BOUND_LOOSE = {"yolov2-voc-slim_dog": 3e-5, "yolov2-voc-slim_horses": 3e-5}
EXACT_BOUND = 1e-6


def _compare(case, net, first):
    errors = {}
    for index, name in enumerate(case.files):
        if name and index >= first:
            errors[index] = rel_l2(net.layers[index].output, case.dump(index))
    return errors


@pytest.mark.parametrize("name", CASES)
def test_forward_matches_darknet(name, in_darknet_dir):
    case = ForwardCase(name)
    net = case.load()
    errors = _compare(case, net, case.run(net))
    assert errors, "no layer dump to compare"
    worst = max(errors, key=errors.get)
    assert errors[worst] <= LAYER_BOUND, f"layer {worst}: rel L2 {errors[worst]:.3g}"
    output = net.output_layer().index
    if output in errors:
        bound = OUTPUT_BOUND_LOOSE.get(name, OUTPUT_BOUND)
        assert errors[output] <= bound, f"output layer {output}: rel L2 {errors[output]:.3g}"


@pytest.mark.parametrize("name", CASES)
def test_forward_exact_matches_darknet(name, in_darknet_dir):
    case = ForwardCase(name)
    net = case.load(exact=True)
    errors = _compare(case, net, case.run(net))
    worst = max(errors, key=errors.get)
    assert errors[worst] <= EXACT_BOUND, f"layer {worst}: rel L2 {errors[worst]:.3g}"


def test_every_forward_case_is_covered():
    if not CASES:
        pytest.skip("../shared/oracle is absent")
    assert len(CASES) == 21
