"""Property-based tests: any config or --set input gives a valid config or a clean UserError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clftrain.config import Config, apply_overrides, parse_overrides, validate_config
from clftrain.errors import UserError

KEYS = ["name", "seed", "device", "task", "dataset", "model", "train", "layers", "lr", "epochs", "activation",
        "n_samples", "test_size", "noise", "centers", "n_classes", "batch_size", "loss", "optimizer", "x"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["circles", "blobs", "relu", "adam", "auto", "cuda"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=6))
def test_any_mapping_validates_or_fails_cleanly(data):
    try:
        assert isinstance(validate_config(data), Config)
    except UserError as exc:
        assert str(exc).startswith("invalid config")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=4))
def test_any_set_items_parse_or_fail_cleanly(items):
    base = {"dataset": {"name": "circles"}, "train": {"epochs": 5}}
    try:
        validate_config(apply_overrides(base, parse_overrides(items)))
    except UserError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"(train|model|dataset)\.[a-z_]{1,10}=[-0-9a-z.\[\],{}: ]{0,12}", fullmatch=True))
def test_plausible_set_items_parse_or_fail_cleanly(item):
    try:
        validate_config(apply_overrides({"dataset": {"name": "moons"}}, parse_overrides([item])))
    except UserError:
        pass
