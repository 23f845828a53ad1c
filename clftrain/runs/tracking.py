"""Experiment trackers a run writes to besides metrics.csv (which stays the source of truth): `tracking:` in the
config, or `fit --track NAME`.

tensorboard: event files under RUN_DIR/tensorboard/ through torch's own SummaryWriter: every metrics.csv
column of each evaluated epoch as a scalar at that epoch (a run with seeds: one scalar per seed,
`test_acc/seed_3`), written in batches (every 30 s of training and at its end), and once the run ends its
hyperparameters with the final metrics (TensorBoard's HPARAMS tab).
"""

from __future__ import annotations

import math
import time

from clftrain.config import Config
from clftrain.errors import UserError
from clftrain.training import Callback, EpochLoop

EXTRAS = {"tensorboard": ("tensorboard", "pip install 'clftrain[tracking]'")}
FOLDER = "tensorboard"


def check_trackers(config: Config) -> None:
    """Each tracker the config names can be used here (its package is installed); before anything is written."""
    import importlib.util

    for name in config.tracking:
        package, install = EXTRAS[name]
        if importlib.util.find_spec(package) is None:
            raise UserError(f"tracking: {name} needs the {package} package, which is not installed: {install} "
                            f"(or remove {name} from tracking)")


def trackers(recorder) -> list[Callback]:
    """The callbacks writing a run directory's trackers (lifecycle.RunRecorder: its config, rows, summary)."""
    return [TensorBoardTracker(recorder) for name in recorder.config.tracking if name == "tensorboard"]


class TensorBoardTracker(Callback):
    """Writes the recorder's new metrics.csv rows every FLUSH_S seconds of training and when it ends (an
    add_scalar costs ~0.1 ms and importing the writer ~0.1 s: paid in batches, not in every evaluated epoch),
    then the hparams."""

    FLUSH_S = 30.0

    def __init__(self, recorder) -> None:
        self.recorder, self.writer, self.written, self.flushed_at = recorder, None, None, time.monotonic()

    def on_epoch_end(self, trainer: EpochLoop, row: dict[str, float]) -> None:
        if time.monotonic() - self.flushed_at >= self.FLUSH_S:
            self._write_new_rows()

    def on_fit_end(self, trainer: EpochLoop) -> None:
        self._write_new_rows()
        summary = self.recorder.summary()
        final = {f"final/{k}": v for k, v in (summary.get("final") or {}).items()
                 if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(v)}
        self.writer.add_hparams(_flat(self.recorder.config.to_dict()), final, run_name="hparams")
        self.writer.close()

    def on_fit_start(self, trainer: EpochLoop) -> None:
        self.written = len(self.recorder.rows())  # a resumed run wrote the earlier ones

    def _write_new_rows(self) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.recorder.run_dir / FOLDER), flush_secs=self.FLUSH_S)
        rows = self.recorder.rows()
        for one in rows[self.written:]:  # a run with seeds adds one row per replica, each with its `seed`
            suffix = f"/seed_{int(one['seed'])}" if "seed" in one else ""
            for key, value in one.items():
                if key not in ("epoch", "seed") and value is not None and math.isfinite(value):
                    self.writer.add_scalar(f"{key}{suffix}", value, global_step=int(one["epoch"]))
        self.written, self.flushed_at = len(rows), time.monotonic()


def _flat(config: dict, prefix: str = "") -> dict:
    """`train.lr`-style keys to numbers, strings and booleans (what the HPARAMS tab shows)."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif value is not None:
            flat[name] = str(value)
    return flat
