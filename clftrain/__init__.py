"""clftrain: train PyTorch classifiers from a YAML experiment config."""

__version__ = "0.1.0"
