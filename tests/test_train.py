"""The loop: metrics it records, mini-batches, early stopping, divergence, best weights."""

from __future__ import annotations

import math

import pytest
import torch

from clftrain.config import validate_config
from clftrain.data import build_dataset
from clftrain.training import build_trainer
from clftrain.training import BestTracker, EarlyStopping
from conftest import tiny_config


def trainer_for(**overrides):
    config = validate_config(tiny_config(**overrides))
    return build_trainer(config, build_dataset(config), torch.device("cpu"))


def test_full_batch_records_one_row_per_evaluated_epoch():
    trainer = trainer_for(train={"epochs": 12, "eval_every": 5}).fit()
    assert [row["epoch"] for row in trainer.history] == [5, 10, 12]  # the last epoch is always evaluated
    assert trainer.status == "completed" and trainer.epoch == 12
    assert set(trainer.history[0]) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds"}


def test_recorded_test_metrics_match_a_manual_evaluation():
    trainer = trainer_for().fit()
    test = trainer.splits["test"]
    trainer.model.eval()
    with torch.no_grad():
        logits = trainer.model(test.X)
    expected_acc = ((logits >= 0).float() == test.y).float().mean().item()
    expected_loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, test.y).item()
    assert trainer.history[-1]["test_acc"] == pytest.approx(expected_acc)
    assert trainer.history[-1]["test_loss"] == pytest.approx(expected_loss, rel=1e-6)


def test_mini_batch_train_metrics_average_over_every_sample():
    trainer = trainer_for(train={"batch_size": 48, "epochs": 3})  # 160 train rows: 48+48+48+16
    steps = []
    original = trainer.train_step

    def counting(X, y, track):
        steps.append(len(X))
        return original(X, y, track)

    trainer.train_step = counting
    trainer.fit()
    assert steps == [48, 48, 48, 16] * 3
    assert 0 <= trainer.history[-1]["train_acc"] <= 1


def test_mini_batch_order_depends_on_the_seed():
    a = trainer_for(train={"batch_size": 32}, seed=1).fit().history[-1]
    b = trainer_for(train={"batch_size": 32}, seed=1).fit().history[-1]
    c = trainer_for(train={"batch_size": 32}, seed=2).fit().history[-1]
    assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    assert a["train_loss"] != c["train_loss"]


def test_batch_norm_skips_a_final_batch_of_one():
    trainer = trainer_for(model={"batch_norm": True}, train={"batch_size": 53, "epochs": 2})  # 160 = 3*53 + 1
    assert trainer.fit().status == "completed"


def test_multiclass_and_regression_metrics():
    multi = trainer_for(dataset={"name": "blobs", "centers": 3, "n_samples": 150}).fit()
    assert "test_acc" in multi.history[-1]
    reg = trainer_for(dataset={"name": "linear"}, task="regression").fit()
    assert {"train_mae", "test_mae"} <= set(reg.history[-1])


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    # lr so small nothing improves; every epoch evaluated, as a config with early_stopping gets
    trainer = trainer_for(train={"epochs": 500, "lr": 1e-9, "eval_every": 1})
    stopper = EarlyStopping("test_loss", patience=5, min_delta=0.01)
    trainer.callbacks = [stopper]
    trainer.fit()
    assert trainer.stopped_early and trainer.epoch == 6  # best at epoch 1, then 5 without improvement


def test_divergence_stops_at_once_and_says_so():
    trainer = trainer_for(dataset={"name": "linear"}, task="regression", train={"loss": "mse", "lr": 1e6, "epochs": 50})
    trainer.fit()
    assert trainer.status == "diverged"
    assert trainer.epoch < 50
    assert not math.isfinite(trainer.history[-1]["train_loss"])


def test_best_tracker_keeps_weights_of_the_best_epoch():
    trainer = trainer_for(train={"epochs": 30})
    best = BestTracker("test_acc")
    trainer.callbacks = [best]
    trainer.fit()
    assert best.mode == "max"
    assert best.best_row["test_acc"] == max(row["test_acc"] for row in trainer.history)
    trainer.model.load_state_dict(best.best_state)
    correct = trainer.evaluate(trainer.splits["test"])[1].item()
    assert correct / len(trainer.splits["test"]) == best.best_row["test_acc"]


def test_threads_auto_measures_one_and_many_and_keeps_the_faster(monkeypatch):
    """A step whose time depends on the thread count (as on a busy machine, where two threads wait on each other)."""
    import time

    from clftrain.training import ThreadChooser

    def step_slow_at(slow_threads: int, times_slower: float, seconds: float = 0.002):
        def step():
            time.sleep(seconds * (times_slower if torch.get_num_threads() == slow_threads else 1))
            return torch.get_num_threads()
        return step

    def chooser_with_free_cores(free: int | None = 2) -> ThreadChooser:
        return ThreadChooser(2, free_cores=lambda: free)

    before = torch.get_num_threads()
    try:
        # N faster: a warm-up step at 1, five steps at 1 and at N in turn, then N; between steps, 1
        chooser = chooser_with_free_cores()
        step = chooser.wrap(step_slow_at(1, times_slower=5))
        used = [step() for _ in range(20)]
        assert used[:11] == [1] + [1, 2] * 5 and set(used[11:]) == {2}
        report = chooser.report()
        assert report["chosen"] == 2 and report["measurements"] == 1
        measured = report["latest"][0]["seconds_per_step"]
        assert measured["1"] > 3 * measured["2"] and report["latest"][0]["steps"] == {"1": 5, "2": 5}
        # N a little slower (not 10% faster): 1 is kept, after all five pairs
        chooser = chooser_with_free_cores()
        step = chooser.wrap(step_slow_at(2, times_slower=1.5))
        used = [step() for _ in range(14)]
        assert used[:11] == [1] + [1, 2] * 5 and set(used[11:]) == {1}
        # N far slower (a busy machine): the first N step settles it, no more are spent on N
        chooser = chooser_with_free_cores()
        step = chooser.wrap(step_slow_at(2, times_slower=10))
        used = [step() for _ in range(10)]
        assert used[:3] == [1, 1, 2] and set(used[3:]) == {1}
        assert chooser.report()["latest"][0]["steps"] == {"1": 1, "2": 1}
        # ... and measuring again waits until that slow step is at most BUDGET of the training time
        monkeypatch.setattr(ThreadChooser, "RECHECK_S", 0.0)
        step()
        assert not chooser.schedule
        chooser.began -= 1000.0  # a long training later (not 10 s: a stall of the slow step under load costs more)
        step()
        assert chooser.schedule and chooser.report()["measurements"] == 1
        monkeypatch.setattr(ThreadChooser, "RECHECK_S", 30.0)
        # fewer cores free than N threads need: N is not tried at all, 1 thread is measured and kept
        chooser = chooser_with_free_cores(1)
        step = chooser.wrap(step_slow_at(1, times_slower=5))
        used = [step() for _ in range(10)]
        assert set(used) == {1}
        latest = chooser.report()["latest"][0]
        assert latest["steps"] == {"1": 5, "2": 0} and latest["not_tried"] == "2 threads: 1 of the cores were free"
        # no /proc/loadavg (not Linux): measured as on a quiet machine
        chooser = chooser_with_free_cores(None)
        step = chooser.wrap(step_slow_at(1, times_slower=5))
        assert [step() for _ in range(12)][:11] == [1] + [1, 2] * 5
        # N chosen, then the machine got busy: steps twice as slow as measured start a new measurement
        monkeypatch.setattr(ThreadChooser, "MEASURED", 3)
        chooser = chooser_with_free_cores()
        fast = chooser.wrap(step_slow_at(1, times_slower=5))
        [fast() for _ in range(8)]
        assert not chooser.schedule and chooser.report()["chosen"] == 2
        slow = chooser.wrap(lambda: time.sleep(0.05))
        slow()
        assert not chooser.schedule  # one slow step is not a jump
        slow()
        assert chooser.schedule  # two of the last three are (their median): measuring again
        # and every RECHECK_S seconds in any case
        monkeypatch.setattr(ThreadChooser, "RECHECK_S", 0.0)
        chooser = chooser_with_free_cores()
        fast = chooser.wrap(step_slow_at(1, times_slower=5))
        [fast() for _ in range(8)]
        assert chooser.schedule and chooser.report()["measurements"] == 1
    finally:
        torch.set_num_threads(before)


def test_threads_auto_gives_torch_its_setting_back_and_a_number_is_kept(monkeypatch):
    from clftrain.training import training_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    trainer = trainer_for(train={"epochs": 30})
    before = torch.get_num_threads()
    with training_threads(1, trainer) as used:
        assert torch.get_num_threads() == 1 and used.report() == 1
        trainer.fit()
    assert torch.get_num_threads() == before
    if before > 1:
        with training_threads("auto", trainer) as used:
            trainer.cfg = trainer.cfg.model_copy(update={"epochs": 60})
            trainer.fit()
        assert used.report()["chosen"] in (1, before) and torch.get_num_threads() == before
        assert "train_step" not in vars(trainer)  # the timing wrapper is gone


def test_adam_and_adamw_take_the_fused_kernel_on_the_cpu():
    for name in ("adam", "adamw"):
        trainer = trainer_for(train={"optimizer": name, "lr": 0.01, "epochs": 3})
        assert trainer.optimizer.defaults["fused"] is True
        trainer.fit()
        assert trainer.status == "completed"
