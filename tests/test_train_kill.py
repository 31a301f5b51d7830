"""A real kill: ``minicnn train`` in a child process gets SIGKILL mid-run; ``--resume`` ends with the weights of
an uninterrupted run (at most the epoch in progress is lost, and nothing is half-written)."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minicnn.cli import main
from minicnn.train import load_checkpoint

pytest.importorskip("sklearn", reason="the digits dataset needs scikit-learn")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL")

ARGS = ["--data", "digits", "--image-size", "12", "--width", "4", "--n-samples", "600", "--batch-size", "16",
        "--epochs", "4", "--no-progress", "--dropout", "0.5"]


def test_sigkill_mid_run_then_resume_matches_uninterrupted(tmp_path, capsys):
    killed = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "minicnn.cli", "train", *ARGS, "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    history = killed / "history.json"
    deadline = time.monotonic() + 120
    while proc.poll() is None and not history.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    was_killed = proc.poll() is None
    if was_killed:
        os.kill(proc.pid, signal.SIGKILL)      # epoch 1 is checkpointed; epoch 2 is (most likely) in progress
    proc.wait()
    assert was_killed or proc.returncode == 0, proc.stderr.read().decode()
    proc.stderr.close()
    ckpt = load_checkpoint(killed / "checkpoint.npz")       # a kill may leave a temp file, never a broken checkpoint
    assert ckpt.epoch >= 1
    assert main(["train", "--out", str(killed), "--resume", "--no-progress"]) == 0
    assert not [p for p in os.listdir(killed) if p.endswith(".tmp")]                # resume tidies temp files away

    full = tmp_path / "full"
    assert main(["train", *ARGS, "--out", str(full)]) == 0
    a, b = load_checkpoint(killed / "checkpoint.npz"), load_checkpoint(full / "checkpoint.npz")
    assert a.epoch == b.epoch == 4
    for key in b.params:
        np.testing.assert_array_equal(a.params[key], b.params[key], err_msg=key)
    for key in b.velocity:
        np.testing.assert_array_equal(a.velocity[key], b.velocity[key], err_msg=key)
