"""The tabular recipe (issue 17): dataset.numeric_transform, model.input_scale, the warmup_cosine scheduler, label
smoothing for bce_with_logits, and model.preset: tabular, which bundles them (bench/ablation.py measures each)."""

from __future__ import annotations

import json
import statistics
import warnings

import numpy as np
import pytest
import torch
import yaml

from clftrain.components import LOSSES
from clftrain.config import config_to_yaml, load_config, validate_config
from clftrain.data import Preprocessor, build_dataset
from clftrain.inference import TrainedRun
from clftrain.training import setup_group, setup_single
from clftrain.training.model import InputScale
from conftest import CONFIGS, tiny_config
from trained_runs import fit_run, invoke

pytestmark = pytest.mark.usefixtures("one_torch_thread")
HEART = CONFIGS / "data" / "heart.csv"


def heart(**dataset) -> dict:
    return {"name": "csv", "path": str(HEART), "target": "disease", "categorical": "auto", **dataset}


def small(name: str, dataset: dict, **sections) -> dict:
    """tiny_config on another dataset (not merged with its circles)."""
    return {**tiny_config(name=name, **sections), "dataset": dataset}


# ---------------------------------------------------------------------------------------- numeric transforms
def test_each_transform_is_fitted_on_the_training_rows_only():
    def built(**dataset):
        return build_dataset(validate_config({"dataset": {"name": "wine", "seed": 3, **dataset}}))

    raw = built(standardize=False)  # the same split, unscaled
    train, test = raw.X_train.astype(np.float64), raw.X_test.astype(np.float64)
    robust = built(numeric_transform="robust_clip").preprocessor
    assert robust.numeric_transform == "robust_clip"
    np.testing.assert_allclose(robust.mean, np.median(train, axis=0), rtol=1e-6)
    low, high = np.quantile(train, [0.25, 0.75], axis=0)
    np.testing.assert_allclose(robust.std, high - low, rtol=1e-6)
    assert not np.allclose(robust.mean, np.median(np.concatenate([train, test]), axis=0))
    quantile = built(numeric_transform="quantile").preprocessor
    assert quantile.mean is None and len(quantile.knots) == train.shape[1]
    np.testing.assert_allclose([k[0] for k in quantile.knots], train.min(axis=0), rtol=1e-6)
    np.testing.assert_allclose([k[-1] for k in quantile.knots], train.max(axis=0), rtol=1e-6)


def test_robust_clip_bounds_outliers_and_quantile_maps_onto_a_normal():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 2))
    X[0, 0] = 1e6  # one wild value
    X[:, 1] = np.round(X[:, 1])  # a column of few values: knots that coincide
    robust = Preprocessor.fit(X, ["a", "b"], [], None, True, "robust_clip")
    Z = robust.transform(X)
    assert np.abs(Z).max() <= 3 and Z[0, 0] > 2.99  # the outlier lands at the bound (3 in float32)
    standard = Preprocessor.fit(X, ["a", "b"], [], None, True, "standard").transform(X)
    assert np.ptp(standard[1:, 0]) < 0.01 and np.ptp(Z[1:, 0]) > 2  # standard squeezes the inliers to a point
    quantile = Preprocessor.fit(X, ["a", "b"], [], None, True, "quantile")
    Q = quantile.transform(X)
    assert abs(Q[:, 0].mean()) < 0.05 and 0.9 < Q[:, 0].std() < 1.2
    order = np.argsort(X[:, 0])
    assert np.all(np.diff(Q[order, 0]) >= 0)  # monotone
    beyond = quantile.transform(np.array([[1e7, 100.0], [-1e7, -100.0]]))
    np.testing.assert_allclose(beyond, [[Q[:, 0].max(), Q[:, 1].max()], [Q[:, 0].min(), Q[:, 1].min()]], rtol=1e-6)


@pytest.mark.parametrize("transform", ["robust_clip", "quantile"])
def test_a_transform_is_saved_and_loaded_and_old_checkpoints_load_as_standard(transform):
    X = np.random.default_rng(1).lognormal(size=(100, 3))
    pre = Preprocessor.fit(X, ["a", "b", "c"], [], None, True, transform)
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))  # as a checkpoint keeps it
    assert again == pre and np.array_equal(again.transform(X), pre.transform(X))
    old = {"numeric": ["a"], "categorical": {}, "fill": {}, "mean": [1.0], "std": [2.0]}  # before the key
    loaded = Preprocessor.from_dict(old)
    assert loaded.numeric_transform == "standard" and loaded.transform(np.array([[5.0]])).tolist() == [[2.0]]
    assert Preprocessor.fit(X, ["a", "b", "c"], [], None, True).to_dict().keys() == old.keys()  # standard: as before


def test_a_run_keeps_its_transform(tmp_path):
    config = small("kept", heart(numeric_transform="robust_clip", val_size=0.15), train={"epochs": 3})
    run = TrainedRun.load(fit_run(tmp_path, config))
    pre = run.inputs.preprocessor
    assert pre.numeric_transform == "robust_clip"
    assert pre == build_dataset(validate_config(config)).preprocessor
    assert np.abs(run.dataset.X_test[:, : len(pre.numeric)]).max() < 3


# ---------------------------------------------------------------------------------------- export
@pytest.mark.parametrize("config", [
    small("clip-scale-ensemble", heart(numeric_transform="robust_clip", val_size=0.15),
          model={"layers": [8], "input_scale": True, "ensemble": 2}, train={"epochs": 5}),
    small("quantile-periodic", {"name": "wine", "numeric_transform": "quantile"},
          model={"layers": [8], "embedding": "periodic"}, train={"optimizer": "adam", "lr": 0.01, "epochs": 5}),
    small("parametric-ensemble", {"name": "wine", "numeric_transform": "robust_clip"},
          model={"layers": [8, 8], "activation": "selu", "parametric_activation": True, "ensemble": 2},
          train={"optimizer": "adam", "lr": 0.05, "epochs": 5}),
], ids=lambda c: c["name"])
def test_the_onnx_graph_folds_in_the_transform_and_the_new_layers(tmp_path, config):
    onnxruntime = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    pytest.importorskip("onnxscript", reason="the export extra is not installed")
    run_dir = fit_run(tmp_path, config)
    result = invoke("export", run_dir)
    assert result.exit_code == 0, result.output
    run = TrainedRun.load(run_dir)
    pre = run.inputs.preprocessor
    if config["dataset"]["name"] == "csv":
        import csv

        rows = list(csv.DictReader(HEART.open()))
        numeric = np.array([[float(r[c]) for c in pre.numeric] for r in rows])
        table = {c: np.array([r[c] for r in rows], dtype=object) for c in pre.categorical}
        table.update({c: numeric[:, j] for j, c in enumerate(pre.numeric)})
    else:
        import sklearn.datasets

        numeric = table = sklearn.datasets.load_wine().data
    X = pre.transform(table)
    expected_p, expected_labels = run.predict(X)
    feeds = {"numeric": numeric.astype(np.float32)}
    if pre.categorical:
        feeds["categories"] = X[:, len(pre.numeric):].astype(np.float32)
    session = onnxruntime.InferenceSession(str(run_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    probabilities, labels = session.run(["probabilities", "labels"], feeds)
    np.testing.assert_allclose(probabilities, expected_p, rtol=1e-5, atol=1e-5)
    assert np.array_equal(labels.reshape(expected_labels.shape), expected_labels)
    sidecar = json.loads((run_dir / "model.onnx.json").read_text())
    assert sidecar["inputs"]["numeric_transform"] == config["dataset"]["numeric_transform"]


# ---------------------------------------------------------------------------------------- model and training
def test_input_scale_starts_at_one_and_learns():
    solo = setup_single(validate_config(tiny_config(model={"layers": [6], "input_scale": True},
                                                    train={"optimizer": "adam", "lr": 0.05, "epochs": 4})))
    first = solo.trainer.model[0]
    assert isinstance(first, InputScale) and (first.weight * first.FACTOR).tolist() == pytest.approx([1.0, 1.0])
    assert torch.equal(first(torch.ones(3, 2)), torch.ones(3, 2))
    solo.trainer.fit()
    assert (first.weight * first.FACTOR).tolist() != pytest.approx([1.0, 1.0], abs=0.1)  # 6x the lr: it moves


def test_a_parametric_activation_starts_as_its_function_and_learns_per_unit():
    from clftrain.training.model import ParametricActivation

    solo = setup_single(validate_config(tiny_config(model={"layers": [6], "activation": "selu",
                                                           "parametric_activation": True},
                                                    train={"optimizer": "adam", "lr": 0.05, "epochs": 20})))
    layer = solo.trainer.model[1]
    assert isinstance(layer, ParametricActivation) and (layer.weight * layer.FACTOR).tolist() == pytest.approx([1.0] * 6)
    x = torch.randn(4, 6)
    assert torch.allclose(layer(x), torch.selu(x))
    solo.trainer.fit()
    alpha = layer.weight.detach() * layer.FACTOR
    assert not torch.allclose(alpha, torch.ones(6), atol=1e-3) and alpha.unique().numel() > 1  # each unit its own
    with torch.no_grad():
        layer.weight.zero_()  # alpha 0: the identity
    assert torch.equal(layer(x), x)


def test_a_periodic_embedding_keeps_each_value_beside_its_waves():
    from clftrain.training.model import PeriodicEmbedding

    torch.manual_seed(0)
    layer = PeriodicEmbedding(3)
    x = torch.randn(5, 3)
    out = layer(x)
    width = PeriodicEmbedding.WIDTH + 1
    assert out.shape == (5, 3 * width) and torch.equal(out[:, ::width], x)
    waves = torch.cos(2 * torch.pi * (x[:, 1:2] * layer.frequency[1] + layer.phase[1]))  # feature 1 alone
    assert torch.allclose(out[:, width + 1: 2 * width], waves @ layer.weight[1] + layer.bias[1], atol=1e-6)


@pytest.mark.parametrize("model", [{"input_scale": True}, {"embedding": "periodic"},
                                   {"parametric_activation": True, "activation": "selu"},
                                   {"parametric_activation": True, "activation": "relu"}],
                         ids=["scale", "periodic", "parametric-selu", "parametric-relu"])
def test_replicas_with_the_new_layers_equal_their_solo_runs(model):
    config = tiny_config(model={"layers": [6], **model},
                         train={"optimizer": "adam", "lr": 0.05, "epochs": 4, "batch_size": 32, "eval_every": 1})
    solo = setup_single(validate_config({**config, "seed": 1}))
    solo.trainer.fit()
    group = setup_group([validate_config({**config, "seeds": [0, 1]})])
    group.trainer.fit()
    mine = [row for row in group.members[0].history if row["seed"] == 1]
    for ours, theirs in zip(mine, solo.trainer.history, strict=True):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert ours["test_acc"] == theirs["test_acc"]


def test_warmup_cosine_warms_up_holds_then_anneals_per_step():
    # 160 training rows in batches of 40: 4 steps an epoch, 40 in all; warm-up 12 steps, hold 8, cosine 20
    session = setup_single(validate_config(tiny_config(train={
        "epochs": 10, "batch_size": 40, "optimizer": "adamw", "lr": 0.01, "eval_every": 1,
        "scheduler": {"name": "warmup_cosine", "warmup": 0.3, "hold": 0.2, "min_lr": 0.001}})))
    lrs = [row["lr"] for row in session.trainer.fit().history]  # the lr after each epoch's last step
    assert lrs[:2] == pytest.approx([0.01 * 5 / 13, 0.01 * 9 / 13]) and lrs[2:5] == pytest.approx([0.01] * 3)
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:])) and lrs[-1] == pytest.approx(0.001)


def test_bce_with_logits_smooths_binary_targets_as_cross_entropy_smooths_two_classes():
    import torch.nn.functional as F

    logits, targets = torch.randn(7, 1), torch.randint(0, 2, (7, 1)).float()
    loss = LOSSES.get("bce_with_logits")
    module = loss.build(label_smoothing=0.2)
    expected = F.binary_cross_entropy_with_logits(logits, targets * 0.8 + 0.1)
    assert module(logits, targets) == pytest.approx(expected.item())
    two = torch.cat([torch.zeros_like(logits), logits], dim=1)  # the same model as a 2-class softmax
    assert module(logits, targets) == pytest.approx(F.cross_entropy(two, targets[:, 0].long(),
                                                                    label_smoothing=0.2).item(), rel=1e-5)
    assert loss.replica_means(module, logits.expand(3, 7, 1), targets).tolist() == pytest.approx([expected.item()] * 3)


# ---------------------------------------------------------------------------------------- the preset
def test_the_preset_fills_what_the_config_does_not_write_and_its_own_keys_win(tmp_path):
    path = tmp_path / "wine.yaml"
    path.write_text(yaml.safe_dump({"dataset": {"name": "wine"}, "model": {"preset": "tabular", "layers": [8]},
                                    "train": {"scheduler": {"name": "cosine"}}}))
    config = load_config(path, ["train.lr=0.005"])
    assert config.model.layers == [8] and config.train.lr == 0.005  # the config's keys, then --set
    assert config.train.scheduler.name == "cosine"  # a section the config writes is its own, not merged
    assert (config.dataset.numeric_transform, config.model.input_scale, config.model.activation) == \
        ("robust_clip", True, "selu")
    assert (config.train.optimizer, config.train.label_smoothing, config.train.batch_size) == ("adam", 0.1, 256)
    assert config.train.early_stopping is not None and config.dataset.val_size > 0  # it decides: a validation split
    written = tmp_path / "again.yaml"
    written.write_text(config_to_yaml(config))
    assert load_config(written).to_dict() == config.to_dict()  # config.yaml holds every value: reading it is a no-op


@pytest.mark.parametrize(("config", "expected"), [
    ({"task": "regression", "dataset": {"name": "linear"}}, {"label_smoothing": 0.0}),
    ({"dataset": {"name": "linear"}}, {"label_smoothing": 0.0}),  # the task follows from the data
    ({"dataset": {"name": "wine", "standardize": False}}, {"numeric_transform": "standard"}),
    ({"dataset": heart(stream=True)}, {"numeric_transform": "robust_clip"}),  # streamed: exact quartiles too
])
def test_the_preset_leaves_out_what_the_config_rules_out(config, expected):
    resolved = validate_config({**config, "model": {"preset": "tabular"}})
    found = {"label_smoothing": resolved.train.label_smoothing, "numeric_transform": resolved.dataset.numeric_transform}
    assert {key: found[key] for key in expected} == expected


def test_a_preset_run_writes_what_it_used(tmp_path):
    config = {"name": "preset", "threads": 1, "report": False, "dataset": {"name": "wine"},
              "model": {"preset": "tabular", "layers": [8], "ensemble": 2}, "train": {"epochs": 3}}
    run = fit_run(tmp_path, config)
    written = yaml.safe_load((run / "config.yaml").read_text())
    assert written["model"]["preset"] == "tabular" and written["dataset"]["numeric_transform"] == "robust_clip"
    assert written["train"]["batch_size"] is None  # the preset's 256 is more than wine's 113 training rows
    assert written["train"]["early_stopping"]["patience"] == 32 and written["model"]["ensemble"] == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"]["layers"][0] == "InputScale(13)"


def test_even_batches_deal_the_rows_into_as_many_batches_of_even_size(tmp_path):
    """Outside the preset too: 160 training rows in batches of 50 are 4 steps; even, 4 of 40 (not 3 x 50 + 10)."""
    from clftrain.components.presets import even_batch_size, fit_preset_to_data

    assert [even_batch_size(259, 256), even_batch_size(1150, 256), even_batch_size(160, 50)] == [130, 230, 40]
    for rows in range(2, 600):
        for size in range(1, rows):
            even = even_batch_size(rows, size)
            assert even <= size and -(-rows // even) == -(-rows // size) and even_batch_size(rows, even) == even
            assert rows - (-(-rows // even) - 1) * even > even - -(-rows // size)  # the last batch: < steps short
    session = setup_single(validate_config(tiny_config(train={"batch_size": 50, "even_batches": True, "epochs": 2})))
    assert session.config.train.batch_size == 40 and len(session.trainer.splits["train"]) == 160
    plain = setup_single(validate_config(tiny_config(train={"batch_size": 50, "epochs": 2})))
    assert plain.config.train.batch_size == 50  # the key's default: off
    run = fit_run(tmp_path, tiny_config(name="even", train={"batch_size": 50, "even_batches": True, "epochs": 2}))
    written = load_config(run / "config.yaml")
    assert (written.train.batch_size, written.train.even_batches) == (40, True)
    fit_preset_to_data(written, 160)
    assert written.train.batch_size == 40  # config.yaml read again: the same batches
    full = validate_config(tiny_config(train={"batch_size": 500, "even_batches": True}))
    fit_preset_to_data(full, 160)
    assert full.train.batch_size == 500  # larger than the rows: left to the batch-size check (exit 2)


@pytest.mark.parametrize(("train", "expected"), [({}, 182), ({"even_batches": False}, 256)])
def test_the_preset_evens_its_batches_unless_the_config_says_no(train, expected):
    # breast_cancer: 569 rows, 20% test, 20% of the rest for validation: 364 training rows, 256 + 108 -> 2 x 182
    config = validate_config({"dataset": {"name": "breast_cancer"}, "model": {"preset": "tabular"}, "train": train})
    session = setup_single(config)
    assert len(session.trainer.splits["train"]) == 364 and session.config.train.batch_size == expected


@pytest.mark.parametrize(("config", "expected"), [
    ({"dataset": {"name": "wine", "standardize": False, "numeric_transform": "robust_clip"}},
     "dataset.numeric_transform = 'robust_clip' scales the numeric columns, but dataset.standardize is false"),
    ({"dataset": {"name": "wine", "numeric_transform": "minmax"}}, "'standard', 'robust_clip' or 'quantile'"),
    ({"dataset": {"name": "wine"}, "model": {"preset": "fancy"}}, "model.preset = 'fancy'"),
    ({"dataset": {"name": "wine"}, "train": {"scheduler": {"name": "warmup_cosine", "warmup": 0.6, "hold": 0.5}}},
     "train.scheduler.warmup + hold = 1.1 leaves no steps for the cosine"),
])
def test_config_errors_exit_2(write_config, config, expected):
    result = invoke("validate", write_config(config))
    assert result.exit_code == 2 and expected in result.output, result.output


def test_a_streamed_table_refuses_a_transform_that_needs_quantiles(write_config, tmp_path):
    config = write_config({"dataset": heart(stream=True, numeric_transform="quantile"),
                           "train": {"batch_size": 32, "epochs": 1}})
    result = invoke("fit", config, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "needs 128 training quantiles per column" in result.output, result.output
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------- against MLPClassifier
def test_the_preset_beats_mlpclassifier_on_the_same_rows(tmp_path):
    """The preset as it is (a few seconds a table: early stopping ends it), on wine and breast_cancer, 3 seeds (each
    its own split): at least MLPClassifier's mean accuracy on each table, and more over the two."""
    means = {table: mean_accuracies(tmp_path, table) for table in ("wine", "breast_cancer")}
    assert all(ours >= theirs for ours, theirs in means.values()), means
    assert sum(ours - theirs for ours, theirs in means.values()) > 0, means


def mean_accuracies(tmp_path, table: str) -> tuple[float, float]:
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    ours, theirs = [], []
    for seed in (0, 1, 2):
        config = {"name": f"{table}-{seed}", "seed": seed, "threads": 1, "report": False,
                  "dataset": {"name": table, "seed": seed}, "model": {"preset": "tabular"}}
        run = fit_run(tmp_path, config)
        ours.append(json.loads((run / "summary.json").read_text())["final"]["test_acc"])
        # The same rows unscaled (standardize: false splits alike), then scikit-learn's defaults with scaling,
        # fitted on every row the preset learned from or decided on: its training and validation rows.
        raw = build_dataset(validate_config({**config, "dataset": {**config["dataset"], "standardize": False}}))
        X = np.concatenate([raw.X_train, raw.X_val])
        y = np.concatenate([raw.y_train, raw.y_val]).reshape(-1)
        scaler = StandardScaler().fit(X)
        # One BLAS thread: on a busy 2-core machine more made its 200 epochs 30 s instead of 1 s.
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")  # "did not converge" is its own business
            mlp = MLPClassifier(random_state=seed).fit(scaler.transform(X), y)
        theirs.append(float(np.mean(mlp.predict(scaler.transform(raw.X_test)) == raw.y_test.reshape(-1))))
    return statistics.fmean(ours), statistics.fmean(theirs)


def test_the_ablation_runs_and_records_each_variant(tmp_path, monkeypatch):
    from conftest import ROOT

    from clftrain.runs import lifecycle

    monkeypatch.syspath_prepend(str(ROOT))  # bench/ is a folder of the repository, not of the installed package
    monkeypatch.setattr(lifecycle, "draw_plots", lifecycle.draw_plots)  # the ablation skips plots: restored after
    from bench import ablation

    out = tmp_path / "ablation.json"
    assert ablation.main(["--tables", "wine", "--seeds", "1", "--variants", "default,preset,-input_scale",
                          "--epochs", "2", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert list(record["summary"]) == ["default", "preset", "-input_scale"]
    assert [run["epochs"] for run in record["runs"]] == [1000, 2, 2]  # --epochs is the preset's only
    assert "| preset | " in out.with_suffix(".md").read_text()
    assert record["preset"]["model"]["input_scale"] is True
