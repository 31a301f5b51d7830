"""Every sub-command, given bad arguments, exits with status 2 and one line on stderr: never a traceback.

In-process (``cli.main([...])``) to save the interpreter start-ups; the last test runs one case as a real process.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from minicnn import backend
from minicnn.cli import build_parser, main

pytest.importorskip("sklearn", reason="the digits dataset needs scikit-learn")

TINY = ["--data", "digits", "--image-size", "12", "--width", "4", "--n-samples", "100", "--no-progress"]


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("misuse")
    (root / "afile.txt").write_text("not a run")
    (root / "garbage").mkdir()
    (root / "garbage" / "best.npz").write_bytes(b"PK\x03\x04 not a zip")
    (root / "garbage" / "checkpoint.npz").write_bytes(b"")
    (root / "empty").mkdir()
    foreign = root / "foreign.npz"
    np.savez(foreign, w=np.zeros(2))
    return root


BAD = {
    "summary": [["nonsense"], ["zfnet", "--input", "3,224"], [], ["lenet5", "--input", "3,x,32"], ["lenet5", "--input", "3,32"],
                ["lenet5", "--classes", "0"], ["lenet5", "--classes", "-1"], ["vgg16", "--input", "3,8,8"],
                ["lenet5", "--classes", "ten"], ["zfnet_small", "--input", "0,32,32"]],
    "gradcheck": [["--seed", "x"], ["--seed", "-1"], ["--seed", "1.5"]],
    "info": [["extra"], ["--threads", "2"]],
    "bench": [["--threads", "abc"], ["--threads", "0"], ["--threads", ""], ["--sections", "nonsense"],
              ["--repeats", "0"], ["--repeats", "-3"]],
    "visualize": [["{root}/missing"], ["{root}/afile.txt"], ["{root}/garbage"], ["{root}/empty"],
                  ["{root}/foreign.npz"], ["{root}/garbage", "--checkpoint", "middle"], ["{root}/garbage", "--device",
                                                                                          "tpu"]],
    "evaluate": [["{root}/missing"], ["{root}/afile.txt"], ["{root}/garbage"], ["{root}/garbage", "--checkpoint",
                                                                                 "last"],
                 ["{root}/empty"], ["{root}/foreign.npz"], ["{root}/garbage", "--split", "holdout"], []],
    "train": [["--epochs", "0"], ["--epochs", "-1"], ["--epochs", "two"], ["--lr", "-1"], ["--lr", "nan"],
              ["--lr", "inf"], ["--lr", "0"], ["--batch-size", "0"], ["--momentum", "1.5"], ["--weight-decay", "nan"],
              ["--weight-decay", "-1"], ["--clip-radius", "-0.1"], ["--clip-radius", "inf"], ["--image-size", "2"],
              ["--data", "nonsense"], ["--model", "nonsense"], ["--val-fraction", "1.5"], ["--test-fraction", "-0.1"],
              ["--dropout", "1"], ["--width", "0"], ["--n-samples", "0"], ["--crop-pad", "-1"], ["--seed", "-1"],
              ["--step-size", "0"], ["--patience", "-1"], ["--schedule", "cosine"], ["--data", "mnist"],
              ["--data", "mnist", "--root", "{root}/missing"], ["--data", "cifar10", "--root", "{root}/empty"],
              ["--data", "digits", "--root", "{root}/empty"], ["--resume"], ["--resume", "--overwrite"],
              ["--out", "{root}/afile.txt"], ["--model", "lenet5", "--width", "4"], ["--model", "vgg16"],
              ["--val-fraction", "0.6", "--test-fraction", "0.6"], ["--device", "tpu"],
              ["--rotate", "-5"], ["--rotate", "181"], ["--rotate", "nan"], ["--rotate", "ten"], ["--zoom", "1"],
              ["--zoom", "-0.1"], ["--zoom", "inf"], ["--zoom", "x"], ["--colour-jitter", "1"],
              ["--colour-jitter", "-0.5"],
              ["--freeze", "conv1,,conv2"], ["--freeze", "nonsense"], ["--freeze", "relu1"], ["--freeze", ""],
              ["--lr-mult", "fc8"], ["--lr-mult", "fc8=0"], ["--lr-mult", "fc8=-1"], ["--lr-mult", "fc8=nan"],
              ["--lr-mult", "fc8=inf"], ["--lr-mult", "=2"], ["--lr-mult", "nonsense=2"], ["--lr-mult", "pool1=2"],
              ["--init-from", "{root}/missing"], ["--init-from", "{root}/garbage"], ["--init-from", "{root}/foreign.npz"],
              ["--init-from", "{root}/afile.txt"], ["--init-from", "photos"]],
    "demo": [["--epochs", "0"], ["--epochs", "-2"], ["--out", "{root}/afile.txt"], ["--device", "tpu"],
             ["--out", "{root}/garbage"]],
    "import": [["resnet50", "{root}/foreign.npz", "--out", "{root}/imported"], ["vgg16", "{root}/missing.pth", "--out",
                                                                               "{root}/imported"],
               ["alexnet", "{root}/afile.txt", "--out", "{root}/imported"],
               ["vgg16", "{root}/foreign.npz", "--out", "{root}/imported"], ["vgg16", "{root}/foreign.npz"]],
    "predict": [["{root}/missing", "{root}/afile.txt"], ["{root}/garbage", "{root}/afile.txt"],
                ["{root}/garbage", "{root}/afile.txt", "--top", "0"], ["{root}/empty"]],
    "gallery": [["--what", "nonsense"], ["--out", "{root}/afile.txt"], ["--out", "{root}/garbage"]],
    None: [["nonsense"], ["--version-of-nothing"]],
}
if not backend.gpu_available():
    for command in ("train", "demo", "visualize"):
        BAD[command].append(["--device", "gpu"] if command != "visualize" else ["{root}/garbage", "--device", "gpu"])


def cases():
    for command, lists in BAD.items():
        for args in lists:
            yield pytest.param(command, args, id=f"{command}:{' '.join(args)}")


@pytest.mark.parametrize("command, args", list(cases()))
def test_misuse_exits_2_with_one_line(command, args, paths, tmp_path, capsys):
    argv = [a.format(root=paths) for a in args]
    if command in ("train", "demo"):
        if "--out" not in argv:
            argv += ["--out", str(tmp_path / "run")]
        if command == "train" and "--data" not in argv:
            argv = TINY + argv
    if command is not None:
        argv = [command] + argv
    before = sorted(os.listdir(paths))
    assert main(argv) == 2, argv
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("minicnn"), err
    assert sorted(os.listdir(paths)) == before
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_every_subcommand_is_covered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) <= set(BAD), f"add bad-argument cases for {sorted(set(sub.choices) - set(BAD))}"


def test_misuse_as_a_real_process(paths):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "minicnn.cli", "evaluate", str(paths / "garbage")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
