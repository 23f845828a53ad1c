"""Successive halving (`clftrain sweep --halving`): the clearly worse runs of a batched model pruned early.

Jamieson & Talwalkar (AISTATS 2016) and Li et al.'s Hyperband (JMLR 2018): n runs start together; at each rung
only the best 1/RATE of those still in go on, the others stop where they are. With n runs and E epochs the rungs
fall at E/RATE^s, ..., E/RATE (s = floor(log_RATE n)), so that about one run trains all E epochs. Here the runs of
one batch train as one stacked model: a pruned run's replicas stop (held like an early-stopped replica, their rows
and checkpoint at the pruning epoch, status `pruned`) and leave the batched work (StackedMLP.set_active), so the
survivors' epochs cost less. Runs are compared by the mean over their replicas (seeds, or folds with --cv) of
their latest validation score, the sweep's ranking (ties to the lower validation loss); the runs of other
batches (other shapes) are not compared.
"""

from __future__ import annotations

import math

from clftrain.training.loop import Callback

RATE = 3  # keep the best third at each rung (Hyperband's default eta)


def rung_epochs(runs: int, epochs: int, rate: int = RATE) -> list[int]:
    """The epochs at which a batch of `runs` trained for `epochs` is halved (none for fewer than `rate` runs)."""
    if runs < rate:
        return []
    steps = int(math.floor(math.log(runs) / math.log(rate) + 1e-9))
    rungs = sorted({max(1, math.ceil(epochs / rate ** (steps - i))) for i in range(steps)})
    return [epoch for epoch in rungs if epoch < epochs]


class SuccessiveHalving(Callback):
    """Prunes a group's members at the rungs of rung_epochs, by their replicas' mean `column` (val_<metric>)."""

    def __init__(self, members: list, column: str, higher_is_better: bool, epochs: int, rate: int = RATE) -> None:
        self.members, self.column, self.higher, self.rate = members, column, higher_is_better, rate
        self.rungs = rung_epochs(len(members), epochs, rate)

    def on_epoch_end(self, trainer, row: dict[str, float]) -> None:
        if self.rungs and trainer.epoch >= self.rungs[0]:  # the first evaluated epoch at or past the rung
            while self.rungs and trainer.epoch >= self.rungs[0]:
                self.rungs.pop(0)
            self._prune(trainer)

    def _prune(self, trainer) -> None:
        alive = [m for m in self.members if m.pruned_at is None]
        keep = math.ceil(len(alive) / self.rate)
        for member in sorted(alive, key=self._order)[keep:]:
            member.pruned_at = trainer.epoch
            going = [i for i in range(len(member.seeds)) if member.active(i)]
            if going:
                trainer.stop_replicas(member, going, early=True)

    def _order(self, member) -> tuple[int, float, float]:
        """Best first, ties (accuracies of a small validation split often tie) to the lower validation loss; a
        run without a finite score (diverged) last."""
        rows = [row for row in member.last_rows() if row and math.isfinite(row[self.column])]
        if not rows:
            return (1, 0.0, 0.0)
        mean = sum(row[self.column] for row in rows) / len(rows)
        loss = sum(row["val_loss"] for row in rows) / len(rows)
        return (0, -mean if self.higher else mean, loss if math.isfinite(loss) else math.inf)
