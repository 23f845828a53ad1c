"""Data: where rows come from (sources.py: generators, bundled tables, CSV via tabular.py and csvtable.py, Parquet
and the typed CSV reader via arrow_tables.py),
a table streamed in blocks (table_batches.py, first_pass.py, streamed.py, split by hashed_split.py),
the split and preprocessing of a config's dataset (build.py, features.py), and what a trained model
expects of new rows (inputs.py). numpy only: tensors are made by training/setup.py."""

from clftrain.faces import lazy_face

EXPORTS = {  # public name -> the module of this package that defines it
    "RawData": "types", "Dataset": "types",
    "DATASETS": "sources",
    "build_dataset": "build", "positive_index": "build", "streams": "build",
    "StreamedTable": "streamed", "FirstPass": "first_pass", "TableBatches": "table_batches",
    "Preprocessor": "features", "Columns": "features",
    "CsvTable": "csvtable", "is_missing": "csvtable", "MISSING_MARKERS": "csvtable",
    "load_csv": "sources",
    "ModelInputs": "inputs", "target_columns": "inputs", "DEFAULT_TARGET": "inputs",
}
__getattr__, __dir__ = lazy_face(__name__, EXPORTS)
