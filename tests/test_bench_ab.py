"""Smoke test of benchmarks/bench_ab.py, the A/B harness between two source trees (no timing is asserted)."""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_ab.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_ab_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_each_side_runs_in_its_own_tree_with_the_thread_count_asked(bench):
    """Both sides measured in subprocesses that imported minicnn from the tree given and saw 1 thread."""
    lines = []
    summary = bench.run_ab(str(ROOT), str(ROOT), ["zfnet_small"], threads=1, reps=1, warmup=0, steps=1, batch=2,
                           print_fn=lines.append)
    result = summary["zfnet_small"]
    assert len(result["new"]) == len(result["base"]) == len(result["ratios"]) == 1
    assert all(t > 0 for t in result["new"] + result["base"])
    for side in ("new", "base"):
        details = result["details"][side]
        assert details["minicnn_file"] == str(ROOT / "minicnn" / "__init__.py")
        assert details["threads"]["minicnn"] == 1          # MINICNN_NUM_THREADS reached the subprocess
    assert any(line.startswith("zfnet_small") and "new/base" in line for line in lines)


def test_one_tree_against_itself_under_two_settings(bench):
    """--env-new / --env-base reach their own side only."""
    summary = bench.run_ab(str(ROOT), str(ROOT), ["zfnet_small"], threads=None, reps=1, warmup=0, steps=1, batch=2,
                           env_new={"MINICNN_NUM_THREADS": "1"}, env_base={"MINICNN_NUM_THREADS": "2"},
                           print_fn=lambda line: None)
    details = summary["zfnet_small"]["details"]
    assert details["new"]["threads"]["minicnn"] == 1 and details["base"]["threads"]["minicnn"] == 2


def test_a_folder_without_minicnn_is_refused(bench, tmp_path, capsys):
    assert bench.main(["--baseline", str(tmp_path), "--reps", "1"]) == 2
    assert "is not a minicnn source tree" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["--sweep", "0,2"], ["--sweep", "1", "--cases", "resnet"],
                                  ["--sweep", "1", "--reps", "0"],
                                  ["--baseline", ".", "--env-base", "NOEQUALS"]])
def test_bad_arguments_exit_2(bench, argv):
    with pytest.raises(SystemExit) as info:
        bench.main(argv)
    assert info.value.code == 2
