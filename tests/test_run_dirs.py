"""Run directories are never replaced without being asked, and an interrupted run gets advice that works."""
import json

import pytest

from minicnn.cli import main
from minicnn.optim import SGD
from minicnn.train import RunDirectoryError, Trainer, load_checkpoint

from test_train import make_trainer, synthetic_splits, tiny_net

pytest.importorskip("sklearn", reason="the digits dataset needs scikit-learn")

TINY = ["--data", "digits", "--image-size", "12", "--width", "4", "--batch-size", "128", "--no-progress",
        "--n-samples", "200", "--epochs", "1"]


def snapshot(run_dir):
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}


def test_cli_refuses_to_train_over_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    before = snapshot(out)
    capsys.readouterr()
    assert main(["train", *TINY, "--seed", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert snapshot(out) == before                                     # nothing replaced, nothing added
    (out / "gallery").mkdir()
    (out / "gallery" / "index.html").write_text("the old run's figures")
    assert main(["train", *TINY, "--seed", "1", "--out", str(out), "--overwrite"]) == 0
    assert not (out / "gallery").exists()                              # no stale figures beside the new run
    assert json.loads((out / "run.json").read_text())["options"]["seed"] == 1
    assert (out / "checkpoint.npz").read_bytes() != before["checkpoint.npz"]
    assert main(["train", *TINY, "--out", str(out), "--overwrite", "--resume"]) == 2     # contradictory


def test_cli_out_naming_a_file(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert main(["train", *TINY, "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "is an existing file" in err and len(err.strip().splitlines()) == 1
    assert target.read_text() == "mine"


def test_trainer_refuses_a_directory_holding_another_run(tmp_path):
    first = make_trainer(tmp_path, epochs=1)
    first.fit()
    before = snapshot(tmp_path)
    with pytest.raises(RunDirectoryError, match="already holds a run"):
        make_trainer(tmp_path, epochs=1, seed=1).fit()
    assert snapshot(tmp_path) == before
    again = make_trainer(tmp_path, epochs=2).resume()          # continuing the same run is allowed
    again.fit()
    assert load_checkpoint(tmp_path / "checkpoint.npz").epoch == 2
    first.epochs = 3
    first.fit()                                                # the trainer that wrote the run may go on
    splits, net = synthetic_splits(), tiny_net(seed=5)
    replaced = Trainer(net, splits, SGD(net, lr=0.05), batch_size=16, epochs=1, out_dir=tmp_path, progress=False,
                       verbose=False, overwrite=True)
    replaced.fit()
    assert load_checkpoint(tmp_path / "checkpoint.npz").epoch == 1
    assert len(json.loads((tmp_path / "history.json").read_text())) == 1
    with pytest.raises(RunDirectoryError, match="is an existing file"):
        Trainer(net, splits, SGD(net), out_dir=tmp_path / "history.json")


def _interrupt_at(monkeypatch, epoch):
    original = Trainer.train_epoch

    def train_epoch(self, e):
        if e == epoch:
            raise KeyboardInterrupt
        return original(self, e)
    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)


def test_ctrl_c_in_the_first_epoch_gives_advice_that_works(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    _interrupt_at(monkeypatch, 1)
    assert main(["train", *TINY, "--epochs", "2", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "no checkpoint was written" in err and "holds the last finished epoch" not in err
    assert not (out / "checkpoint.npz").exists()
    monkeypatch.undo()
    command = err.strip().splitlines()[-1].split(":  ")[-1].split()
    assert command[:2] == ["minicnn", "train"] and "--resume" in command
    assert main(command[1:] + ["--no-progress"]) == 0                   # the advised command works
    assert load_checkpoint(out / "checkpoint.npz").epoch == 2
    assert json.loads((out / "run.json").read_text())["options"]["n_samples"] == 200   # the saved options


def test_ctrl_c_later_names_the_checkpointed_epoch(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    _interrupt_at(monkeypatch, 2)
    assert main(["train", *TINY, "--epochs", "2", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "holds epoch 1" in err and f"minicnn train --out {out} --resume" in err


def test_ctrl_c_before_training_changes_nothing(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    before = snapshot(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    import minicnn.data
    monkeypatch.setattr(minicnn.data, "load_dataset", interrupted)
    capsys.readouterr()
    assert main(["train", *TINY, "--out", str(out), "--overwrite"]) == 130
    assert "nothing in" in capsys.readouterr().err
    assert snapshot(out) == before


def test_resume_with_a_corrupt_run_json(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text('{"options": {"epochs": 2')
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "run.json is not valid JSON" in err and len(err.strip().splitlines()) == 1
    (out / "run.json").write_text("[1, 2]")
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 2
    assert "holds no 'options' object" in capsys.readouterr().err


def test_a_trainer_pointed_at_another_directory_is_checked_again(tmp_path):
    other = make_trainer(tmp_path / "other", epochs=1)
    other.fit()
    before = snapshot(tmp_path / "other")
    trainer = make_trainer(tmp_path / "mine", epochs=1)
    trainer.fit()
    trainer.out_dir, trainer.epochs = str(tmp_path / "other"), 2
    with pytest.raises(RunDirectoryError, match="already holds a run"):
        trainer.fit()
    assert snapshot(tmp_path / "other") == before
    with pytest.raises(RunDirectoryError, match="empty string"):
        make_trainer("", epochs=1)


def test_demo_refuses_to_replace_a_run_and_says_how(tmp_path, capsys):
    (tmp_path / "checkpoint.npz").write_bytes(b"an earlier run")
    assert main(["demo", "--out", str(tmp_path), "--epochs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "--resume" not in err                # the demo has no --resume
    assert (tmp_path / "checkpoint.npz").read_bytes() == b"an earlier run"


def test_resume_without_run_json_uses_the_options_in_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    (out / "run.json").unlink()
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert load_checkpoint(out / "checkpoint.npz").epoch == 2
    assert json.loads((out / "run.json").read_text())["options"]["width"] == 4
