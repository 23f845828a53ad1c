"""`python -m clftrain`: the clftrain program."""

from clftrain.cli import run

run()
