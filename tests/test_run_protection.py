"""What the configs call around a run: no result replaced silently, the checkpoint to resume from, and the one
comparison of errors (bundle/workflow.py)."""

from __future__ import annotations

import pytest
import torch

from bundle import check_outputs, latest_checkpoint, refuse_existing


def test_the_word_false_does_not_overwrite(tmp_path):
    (tmp_path / "landmarks.csv").write_text("x")
    with pytest.raises(FileExistsError, match="landmarks.csv exists: pass"):
        refuse_existing(tmp_path / "landmarks.csv", "false")
    refuse_existing(tmp_path / "landmarks.csv", "true")


def test_the_word_false_does_not_resume_or_replace_a_training(tmp_path):
    model, checkpoints = tmp_path / "model.pt", tmp_path / "checkpoints"
    model.write_text("weights")
    with pytest.raises(FileExistsError, match="already exist: pass --resume true"):
        check_outputs(model, checkpoints, resume="false", overwrite="false")
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        check_outputs(model, checkpoints, resume="true", overwrite="false")
    checkpoints.mkdir()
    for epoch in (2, 10, 9):
        torch.save({"epoch": epoch}, checkpoints / f"resume_checkpoint_epoch={epoch}.pt")
    assert latest_checkpoint(checkpoints).endswith("epoch=10.pt")
    # a training killed while writing epoch 11's checkpoint: that file is incomplete, epoch 10's is used
    complete = (checkpoints / "resume_checkpoint_epoch=10.pt").read_bytes()
    (checkpoints / "resume_checkpoint_epoch=11.pt").write_bytes(complete[: len(complete) // 2])
    assert latest_checkpoint(checkpoints).endswith("epoch=10.pt")
    check_outputs(model, checkpoints, resume="1", overwrite="0")
    check_outputs(model, checkpoints, resume="false", overwrite="true")
    assert not checkpoints.exists()  # a fresh training with overwrite clears the old resume checkpoints
    with pytest.raises(ValueError, match="resume must be true or false"):
        check_outputs(model, checkpoints, resume="maybe", overwrite=False)


def test_lower_is_better_is_the_one_comparison_of_errors_and_losses():
    from bundle import lower_is_better

    assert lower_is_better(5.0, -1.0)  # MONAI's start value: no best yet
    assert lower_is_better(1.0, 2.0) and not lower_is_better(2.0, 1.0) and not lower_is_better(1.0, 1.0)
    assert lower_is_better(0.0, -1.0)


def test_a_fine_tuning_that_starts_from_the_model_may_replace_it(tmp_path):
    model, checkpoints = tmp_path / "models" / "model.pt", tmp_path / "checkpoints"
    model.parent.mkdir()
    model.write_text("weights")
    checkpoints.mkdir()
    with pytest.raises(FileExistsError):  # starting from other weights does not make model.pt replaceable
        check_outputs(model, checkpoints, resume=False, overwrite=False, starts_from=[tmp_path / "other.pt"])
    # MONAI Label's training task loads models/model.pt first (a CheckpointLoader), from a path of its own spelling
    check_outputs(
        model, checkpoints, False, False, starts_from=[str(tmp_path / "models" / ".." / "models" / "model.pt")]
    )
    assert model.exists() and not checkpoints.exists()  # the old run's resume checkpoints are not this run's
