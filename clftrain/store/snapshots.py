"""The decision boundary as it evolved over training: `snapshots/boundary.npz` in a run directory (numpy only).

Written once when training ends (runs/snapshots.py takes the snapshots during fit) and read by the report
(inference/report.py). One compressed .npz, loaded without pickle:

  epochs   [K] int32        the epoch each snapshot was taken after (0: before the first step)
  regions  [K, H, W] uint8  (uint16 past 255 classes) the predicted class over a grid of the feature plane,
                            rows from the bottom (y) and columns along x, as an image's pixels
  extent   [4] float64      the grid's (x0, x1, y0, y1) in the model's (scaled) features
  classes  [C] str          the class names, index = the predicted class

A few kB (eight 101 x 101 grids of blocky regions compress to about 1 kB each).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clftrain.errors import UserError
from clftrain.store.rundir import atomic_write_bytes

SNAPSHOTS = "snapshots"
BOUNDARY = "boundary.npz"
MAX_BOUNDARY_BYTES = 64 << 20  # far above what a run writes: a bigger file is not one of ours


def boundary_path(run_dir: Path) -> Path:
    return run_dir / SNAPSHOTS / BOUNDARY


@dataclass
class BoundarySnapshots:
    epochs: list[int]
    regions: np.ndarray  # [K, H, W]
    extent: tuple[float, float, float, float]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.epochs)

    def up_to(self, epoch: int) -> BoundarySnapshots:
        """The snapshots taken at or before `epoch` (a resumed run goes on from there)."""
        keep = [i for i, e in enumerate(self.epochs) if e <= epoch]
        return BoundarySnapshots([self.epochs[i] for i in keep], self.regions[keep], self.extent, self.classes)


def write_boundary(path: Path, snapshots: BoundarySnapshots) -> None:
    dtype = np.uint8 if len(snapshots.classes) <= 256 else np.uint16
    buffer = io.BytesIO()
    np.savez_compressed(buffer, epochs=np.asarray(snapshots.epochs, dtype=np.int32),
                        regions=np.asarray(snapshots.regions, dtype=dtype),
                        extent=np.asarray(snapshots.extent, dtype=np.float64),
                        classes=np.asarray(snapshots.classes, dtype=str))
    atomic_write_bytes(path, buffer.getvalue())


def read_boundary(run_dir: Path) -> BoundarySnapshots | None:
    """The run's snapshots; None when it has none; a UserError naming the file when it is damaged."""
    path = boundary_path(run_dir)
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_BOUNDARY_BYTES:
        raise UserError(f"{path} is damaged (larger than {MAX_BOUNDARY_BYTES >> 20} MiB)")
    try:
        with np.load(path, allow_pickle=False) as data:
            epochs, regions = data["epochs"], data["regions"]
            extent, classes = data["extent"], data["classes"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path} is damaged: {exc}") from None
    if regions.ndim != 3 or len(epochs) != len(regions) or extent.shape != (4,):
        raise UserError(f"{path} is damaged: {len(epochs)} epochs for regions of shape {regions.shape}")
    return BoundarySnapshots([int(e) for e in epochs], regions, tuple(float(v) for v in extent),
                             [str(c) for c in classes])
