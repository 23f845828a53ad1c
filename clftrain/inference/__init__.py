"""Inference from a run directory alone: a trained run loaded back (trained.py), its model run over rows
(scoring.py), `clftrain eval` (evaluate.py, with scikit-learn's metrics in metrics.py) and
`clftrain predict` (predict.py; of a large table a block at a time: streamed_predict.py, table_blocks.py) and `clftrain export` (export.py: ONNX); a run's report.html gathered
(report.py). Nothing is retrained."""

from clftrain.faces import lazy_face

EXPORTS = {  # public name -> the module of this package that defines it
    **dict.fromkeys(["TrainedRun", "ReplicaChoice", "median_replica", "check_same_run"], "trained"),
    "Scored": "scoring",
    **dict.fromkeys(["evaluate_run", "write_eval", "fit_check", "EVAL"], "evaluate"),
    **dict.fromkeys(["predict_csv", "write_output", "output_columns", "PREDICTED"], "predict"),
    "predict_stream": "streamed_predict",
    **dict.fromkeys(["streams_input", "STREAM_BYTES", "block_inputs", "block_targets"], "table_blocks"),
    **dict.fromkeys(["export_run", "ExportedModel", "FORMATS"], "export"),
    **dict.fromkeys(["report_of_run", "draw_plots_and_report", "REPORT"], "report"),
}
__getattr__, __dir__ = lazy_face(__name__, EXPORTS)
