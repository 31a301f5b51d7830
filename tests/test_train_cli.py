"""Command line: ``minicnn train``, ``evaluate``, ``demo`` on tiny settings (real shipped data, seconds)."""
import json

import pytest

from minicnn.cli import main
from minicnn.demo import run_demo

pytest.importorskip("sklearn", reason="the digits dataset needs scikit-learn (pip install 'minicnn[data]')")

TINY = ["--data", "digits", "--image-size", "12", "--width", "4", "--batch-size", "128", "--no-progress",
        "--n-samples", "300"]


def test_train_evaluate_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out), "--ten-crop"]) == 0
    text = capsys.readouterr().out
    assert "epoch   1/1" in text and "test (" in text and "ten-crop top-1" in text
    results = json.loads((out / "results.json").read_text())
    assert results["epochs"] == 1 and 0 <= results["test_top1"] <= 1 and results["test_n"] > 0
    assert "top-1" in (out / "summary.txt").read_text()

    assert main(["evaluate", str(out), "--ten-crop"]) == 0
    text = capsys.readouterr().out
    assert "test split" in text and "5-view test-time averaging" in text       # digits: no flips

    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "resuming" in text and "epoch   2/2" in text and "epoch   1/2" not in text
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    run = json.loads((out / "run.json").read_text())
    assert run["options"]["width"] == 4 and run["options"]["image_size"] == 12      # options kept on resume


def test_train_rotation_and_zoom_reach_the_training_augmentation(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out), "--rotate", "15", "--zoom", "0.1"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["augment"] == "Augment(crop_pad=2, hflip=False, rotate=15.0, zoom=0.1)"       # digits: no flips
    assert run["options"]["rotate"] == 15.0 and run["options"]["zoom"] == 0.1
    assert main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "plain")]) == 0
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["augment"] == "Augment(crop_pad=2, hflip=False)"


def test_cli_errors(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "no run directory" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "fresh"), "--resume", "--no-progress"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    assert main(["train", "--data", "nonsense", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "best.npz").write_bytes(b"garbage")
    assert main(["evaluate", str(tmp_path / "bad")]) == 2
    assert "corrupt" in capsys.readouterr().err


def test_demo_writes_its_files(tmp_path, capsys):
    out = tmp_path / "demo"
    results = run_demo(str(out), epochs=1, width=4, image_size=12, n_samples=300, progress=False)
    for name in ("checkpoint.npz", "best.npz", "history.json", "history.csv", "curves.png", "summary.txt"):
        assert (out / name).exists(), name
    assert "demo wall time" in (out / "summary.txt").read_text()
    text = capsys.readouterr().out
    assert str(out) in text and "minicnn gallery" in text and "runs/pretrained/gallery/index.html" in text
    assert 0 <= results["test_top1"] <= 1
    # the demo trains on colour photographs (issue 17): conv1 sees three channels
    assert results["trainer"].splits.input_shape[0] == 3 and results["trainer"].net["conv1"].params["W"].shape[1] == 3


def test_resume_follows_a_changed_step_schedule(tmp_path):
    # a step schedule is a function of the epoch: resuming with another step_size sets the next epoch's rate by it
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--step-size", "5", "--lr", "0.01", "--out", str(out),
                 "--no-progress"]) == 0
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--step-size", "1", "--no-progress"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert [round(h["lr"], 6) for h in history] == [0.01, 0.001]


def test_fine_tune_from_a_run_with_frozen_layers_and_lr_mult(tmp_path, capsys):
    """--init-from copies the layers that fit, --freeze keeps them bit for bit through training and a resume,
    --lr-mult is recorded; all of it lands in run.json and the checkpoint."""
    import numpy as np
    from minicnn.train import load_checkpoint
    source, tuned = tmp_path / "source", tmp_path / "tuned"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(source)]) == 0
    assert main(["train", *TINY, "--epochs", "1", "--out", str(tuned), "--init-from", str(source),
                 "--freeze", "conv1,conv2", "--lr-mult", "fc8=10", "--lr-mult", "fc7=2", "--seed", "3"]) == 0
    assert "initialised conv1, conv2, conv3, conv4, conv5, fc6, fc7, fc8 from" in capsys.readouterr().out
    before = load_checkpoint(source / "best.npz").params
    after = load_checkpoint(tuned / "checkpoint.npz")
    for key in ("conv1.W", "conv1.b", "conv2.W", "conv2.b"):
        np.testing.assert_array_equal(after.params[key], before[key], err_msg=key)
    assert not np.array_equal(after.params["fc8.W"], before["fc8.W"])
    assert after.meta["optimizer"]["frozen"] == ["conv1", "conv2"]
    assert after.meta["optimizer"]["lr_mult"] == {"fc8": 10.0, "fc7": 2.0}
    options = json.loads((tuned / "run.json").read_text())["options"]
    assert options["freeze"] == ["conv1", "conv2"] and options["lr_mult"] == {"fc8": 10.0, "fc7": 2.0}
    assert main(["train", "--out", str(tuned), "--resume", "--epochs", "2", "--no-progress"]) == 0
    resumed = load_checkpoint(tuned / "checkpoint.npz")
    np.testing.assert_array_equal(resumed.params["conv1.W"], before["conv1.W"])
    assert resumed.epoch == 2 and resumed.meta["optimizer"]["frozen"] == ["conv1", "conv2"]
    # a second stage: resume with fewer frozen layers; the options given now win over the checkpoint's
    assert main(["train", "--out", str(tuned), "--resume", "--epochs", "3", "--no-progress", "--freeze", "conv1",
                 "--lr-mult", "fc8=2"]) == 0
    third = load_checkpoint(tuned / "checkpoint.npz")
    assert third.meta["optimizer"]["frozen"] == ["conv1"] and third.meta["optimizer"]["lr_mult"] == {"fc8": 2.0}
    np.testing.assert_array_equal(third.params["conv1.W"], before["conv1.W"])
    assert not np.array_equal(third.params["conv2.W"], before["conv2.W"])
