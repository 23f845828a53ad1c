"""The run directory store: its files and how they are written (rundir.py: atomic writes, checkpoints,
metrics.csv) and run directories read back for listing and comparing (records.py). No torch at import."""

from clftrain.faces import lazy_face

EXPORTS = {  # public name -> the module of this package that defines it
    "RunRecord": "records", "find_runs": "records", "check_comparable": "records", "labels": "records",
}
__getattr__, __dir__ = lazy_face(__name__, EXPORTS)
