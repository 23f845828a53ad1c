"""`clftrain export --format onnx`: the exported model run in onnxruntime gives what `clftrain predict` gives."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from clftrain.inference import TrainedRun, predict_csv
from conftest import tiny_config
from trained_runs import fit_run, invoke

pytest.importorskip("onnxruntime", reason="the export extra (pip install 'clftrain[export]') is not installed")
pytest.importorskip("onnxscript", reason="the export extra (pip install 'clftrain[export]') is not installed")


def onnx_probabilities(path, numeric: np.ndarray, categories: np.ndarray | None = None):
    """The exported model run in onnxruntime: (probabilities, labels)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"numeric": numeric.astype(np.float32)}
    if categories is not None:
        feeds["categories"] = categories.astype(np.float32)
    return session.run(["probabilities", "labels"], feeds)


def raw_test_rows(run) -> np.ndarray:
    """The test split's numeric columns as the user had them: scaling undone (generated data has no gaps)."""
    pre, X = run.inputs.preprocessor, run.dataset.X_test[:, : len(run.inputs.preprocessor.numeric)]
    return X.astype(np.float64) * np.asarray(pre.std) + np.asarray(pre.mean) if pre.mean is not None else X


@pytest.mark.parametrize("config", [
    tiny_config(name="binary"),
    tiny_config(name="multiclass", dataset={"name": "blobs", "centers": 3, "n_features": 4}),
    tiny_config(name="multilabel", dataset={"name": "multilabel", "n_features": 3, "n_classes": 3}),
    tiny_config(name="regression", task="regression", dataset={"name": "linear"}),
    tiny_config(name="seeds", seeds=[0, 1, 2]),
], ids=lambda c: c["name"])
def test_the_onnx_model_gives_the_probabilities_and_labels_predict_gives(tmp_path, config):
    run_dir = fit_run(tmp_path, config)
    result = invoke("export", run_dir)
    assert result.exit_code == 0, result.output
    model, sidecar = run_dir / "model.onnx", run_dir / "model.onnx.json"
    assert f"wrote {model} and {sidecar}" in result.output
    run = TrainedRun.load(run_dir)
    expected_p, expected_labels = run.predict(run.dataset.X_test)
    probabilities, labels = onnx_probabilities(model, raw_test_rows(run))
    assert probabilities.shape == expected_p.shape
    np.testing.assert_allclose(probabilities, expected_p, rtol=1e-5, atol=1e-5)
    if config.get("task") == "regression":
        np.testing.assert_allclose(labels.reshape(expected_labels.shape), expected_labels, rtol=1e-5, atol=1e-5)
    else:
        assert np.array_equal(labels.reshape(expected_labels.shape), expected_labels)
    described = json.loads(sidecar.read_text())
    assert described["inputs"]["numeric"] == run.inputs.preprocessor.numeric
    assert described["class_names"] == run.inputs.class_names and described["task"] == run.inputs.task.name
    if "seeds" in config:
        assert described["replica"]["why"] == "median"


def test_a_csv_run_with_categories_and_imputed_gaps_exports_with_its_encoding(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["size,colour,weight,label"]
    for i in range(200):
        size = "" if i % 17 == 0 else f"{rng.normal():.4f}"  # gaps the run imputes
        colour = ["red", "green", "blue"][i % 3]
        lines.append(f"{size},{colour},{rng.normal() + (i % 3):.4f},{'yes' if (i % 3 == 2) else 'no'}")
    (tmp_path / "table.csv").write_text("\n".join(lines) + "\n")
    config = {**tiny_config(name="table"), "dataset": {"name": "csv", "path": str(tmp_path / "table.csv"),
                                                      "target": "label", "impute": "mean", "categorical": "auto"}}
    run_dir = fit_run(tmp_path, config)
    (tmp_path / "out").mkdir()
    result = invoke("export", run_dir, "-o", tmp_path / "out" / "m.onnx")
    assert result.exit_code == 0, result.output
    assert "categorical columns colour are inputs as their one-hot encoding" in result.output
    described = json.loads((tmp_path / "out" / "m.onnx.json").read_text())
    assert described["inputs"]["names"] == ["numeric", "categories"]
    assert described["inputs"]["categories"] == ["colour=blue", "colour=green", "colour=red"]
    assert set(described["inputs"]["imputed"]) == {"size", "weight"}

    from clftrain.data import CsvTable

    run = TrainedRun.load(run_dir, with_data=False)
    table = CsvTable.read(tmp_path / "table.csv")
    numeric = np.column_stack([table.numbers(c, allow_missing=True) for c in run.inputs.preprocessor.numeric])
    assert np.isnan(numeric).any()  # the raw gaps go in as NaN: the graph imputes them
    categories = run.inputs.features(table)[:, len(run.inputs.preprocessor.numeric):]
    probabilities, labels = onnx_probabilities(tmp_path / "out" / "m.onnx", numeric, categories)
    text, _ = predict_csv(run_dir, tmp_path / "table.csv")
    predicted = list(csv.DictReader(io.StringIO(text)))
    expected = np.array([float(row["prob_yes"]) for row in predicted])  # predict's probability of 'yes'
    np.testing.assert_allclose(probabilities[:, 0], expected, rtol=1e-5, atol=1e-6)
    assert run.inputs.class_names == ["no", "yes"]
    assert [run.inputs.class_names[int(v)] for v in labels[:, 0]] == [row["predicted"] for row in predicted]


def test_export_refuses_an_existing_file_and_an_unknown_format(tmp_path):
    run_dir = fit_run(tmp_path, tiny_config())
    (run_dir / "model.onnx").write_text("mine")
    result = invoke("export", run_dir)
    assert result.exit_code == 2 and "already exists; choose another path, or pass --force" in result.output
    assert (run_dir / "model.onnx").read_text() == "mine"
    result = invoke("export", run_dir, "--format", "tflite")
    assert result.exit_code == 2 and "tflite" in result.output
    result = invoke("export", tmp_path / "nowhere")
    assert result.exit_code == 2 and "run directory not found" in result.output


def test_export_names_the_extra_when_onnx_is_missing_and_a_damaged_run(tmp_path, monkeypatch):
    run_dir = fit_run(tmp_path, tiny_config())
    with monkeypatch.context() as patched:
        patched.setitem(__import__("sys").modules, "onnxscript", None)  # as if not installed
        result = invoke("export", run_dir)
    assert result.exit_code == 2
    assert "ONNX export needs the onnx and onnxscript packages: pip install 'clftrain[export]'" in result.output
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"\x80\x02garbage")
    result = invoke("export", run_dir)
    assert result.exit_code == 2 and "truncated or corrupt" in result.output
    assert not (run_dir / "model.onnx").exists() and not (run_dir / "model.onnx.json").exists()
