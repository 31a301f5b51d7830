"""Smoke test of benchmarks/bench_ops.py (no timing is asserted) and of its PyTorch twin of a minicnn net."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_ops.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_ops_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_quick_run_prints_every_row(bench, capsys):
    rows = bench.main(["--quick", "--no-torch", "--threads", "1"])
    out = capsys.readouterr().out
    labels = {(r.section, r.label, r.op) for r in rows}
    zf_conv, zf_pool, zf_lrn = bench.zf_small_shapes()
    assert len(zf_conv) == 5 and len(zf_pool) == 3 and len(zf_lrn) == 2
    for shape in bench.CONV_SHAPES + zf_conv:
        assert ("conv", shape[0], "forward") in labels and ("conv", shape[0], "fwd+bwd") in labels
        assert shape[0] in out
    assert sum(r.section == "pool" for r in rows) == 2 * (len(bench.POOL_SHAPES) + len(zf_pool))
    assert sum(r.section == "lrn" for r in rows) == 2 * (len(bench.LRN_SHAPES) + len(zf_lrn))
    assert {r.label.split()[0] for r in rows if r.section == "train"} == {"zfnet_small", "lenet5"}
    assert any(r.section == "memory" for r in rows) and "peak traced memory" in out
    assert all(r.seconds > 0 for r in rows if r.section != "memory")
    assert all(r.sgemm_share > 0 for r in rows if r.section == "conv")


def test_unknown_section_is_an_error(bench):
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--sections", "conv,nonsense"])


def test_torch_twin_computes_the_same_network(bench):
    torch = pytest.importorskip("torch")
    from minicnn.models import zfnet_small
    net = zfnet_small(num_classes=10, input_shape=(3, 32, 32), width=8)
    for layer in net:
        if type(layer).__name__ == "LRN":
            layer.config["alpha"] = 0.5      # large enough that a wrong alpha conversion shows
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    want = net.forward(x, train=False)
    twin = bench.torch_twin(net, torch).eval()
    with torch.no_grad():
        got = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

