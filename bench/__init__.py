"""Benchmarks: clftrain's training loop against a hand-written PyTorch loop, scikit-learn and Lightning.

`make bench` (or `python -m bench.run`) runs them; see bench/run.py.
"""
