"""Training and evaluating on a streamed table (data/streamed.py): the rows come a block at a time, never whole.

Training: when the training rows fit in `dataset.shuffle_buffer`, they are read once and the run trains
exactly as in memory (same order, same steps: a small table streamed gives the in-memory numbers). Else
each epoch visits the blocks in a shuffled order and passes their rows through a shuffle buffer of that
many rows: each incoming row takes the place of a uniformly drawn row of the buffer, which goes on to the
next mini-batch (the buffer's rows go last, shuffled). The epoch's draws come from a generator seeded by
(seed, epoch), so an epoch stopped between two mini-batches is continued on resume by replaying its
stream to the step it reached: the same batches, bit for bit, with nothing but the step saved.
Evaluation adds up each block's loss and score sums: every row of the split counted once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from clftrain.data.streamed import StreamedTable
from clftrain.training import distributed
from clftrain.training.model import forward_in_chunks
from clftrain.training.trainer import Trainer


@dataclass
class StreamSplit:
    """A split of a streamed table: its rows counted, read a block at a time as device tensors; data-parallel,
    each rank reads its share of the blocks (StreamedTable.share): disjoint, together every block."""

    table: StreamedTable
    name: str
    device: torch.device
    blocks: list[int] | None = None  # this rank's share; None: every block

    def __len__(self) -> int:
        return self.table.sizes[self.name]  # the whole split's rows (every rank's)

    def sizes(self, replicas: list[int] | None) -> int:
        """The rows each replica is scored on: all of them (a streamed table has no folds; build refuses them)."""
        return len(self)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for X, y in self.table.split_batches(self.name, self.blocks):
            yield torch.as_tensor(X, device=self.device), torch.as_tensor(y, device=self.device)


class StreamTrainer(Trainer):
    """Trainer whose held-out splits (and, past the shuffle buffer, the training split) are StreamSplits.

    Data-parallel past the buffer, each rank streams its share of the blocks through its own buffer in
    mini-batches of batch_size / ranks, DistributedDataParallel averaging the ranks' gradients; every rank
    takes the same number of steps an epoch (the largest share's), a rank whose share ends first going
    round it again, those extra rows left out of the epoch's sums (each training row counted once)."""

    shuffle_buffer: int = 0

    def run_epoch(self, track: bool) -> list[torch.Tensor] | None:
        if not isinstance(self.splits["train"], StreamSplit):  # the training rows fit in the buffer: read once
            return super().run_epoch(track)
        if self._mode_matters:
            self.model.train()
        if self.partial is not None:  # resumed in the middle of this epoch: replay it to the step it reached
            first, sums = self.partial["next_step"], list(self.partial["sums"])
            self.partial = None
        else:
            first, sums = 0, self._zero_sums(track)
        for step, (X, y, counted) in enumerate(self._epoch_batches()):
            if step < first:
                continue
            if step > first and self._stopping():
                self._keep_partial(torch.zeros(0), step, sums, track)
                return None
            if len(y) == 1 and self._has_batch_norm:
                if self.world is None:
                    break  # BatchNorm cannot normalise a batch of one sample: skip that last sample
                X, y = X.repeat(2, *[1] * (X.dim() - 1)), y.repeat(2, *[1] * (y.dim() - 1))  # every rank steps
            step_sums = self._local_step(X, y, track and counted)
            if step_sums:
                sums = step_sums if not sums else [a + b for a, b in zip(sums, step_sums)]
        return sums

    def _zero_sums(self, track: bool) -> list[torch.Tensor]:
        """Data-parallel, a rank's epoch sums exist even if it counted nothing: the ranks add them up together."""
        if self.world is None or not track:
            return []
        device = self.splits["train"].device
        return [torch.zeros((), device=device), torch.zeros((), device=device)]

    def steps_per_epoch(self) -> int:
        """Every rank's steps an epoch: its share's rows in mini-batches, the largest share's count."""
        split, size = self.splits["train"], self._local_batch()
        if self.world is None:
            return -(-len(split) // size)
        shares = [split.table.share(rank, self.world.size) for rank in range(self.world.size)]
        return max(-(-split.table.split_rows("train", share) // size) for share in shares)

    def _local_batch(self) -> int:
        world = self.world.size if self.world is not None else 1
        return -(-self.cfg.batch_size // world)

    def _epoch_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, bool]]:
        """(X, y, counted) for each step of the epoch; data-parallel, exactly steps_per_epoch() of them."""
        if self.world is None:
            for X, y in self.shuffled_batches():
                yield X, y, True
            return
        steps, cycle, done = self.steps_per_epoch(), 0, 0
        while done < steps:
            for X, y in self.shuffled_batches(cycle):
                yield X, y, cycle == 0
                done += 1
                if done == steps:
                    return
            cycle += 1

    def _local_step(self, X: torch.Tensor, y: torch.Tensor, track: bool) -> list[torch.Tensor]:
        """One step on this rank's own mini-batch (data-parallel: DistributedDataParallel averages the ranks')."""
        if self.world is None:
            return self.train_step(X, y, track)
        self.seed_rank_dropout()
        return self.mean_loss_step(self._parallel, X, y, track)

    def shuffled_batches(self, cycle: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This epoch's mini-batches of this rank's share: blocks in a shuffled order through the shuffle buffer
        (see the module); `cycle`: a data-parallel rank's next round of its share within one epoch."""
        split = self.splits["train"]
        table, size, device = split.table, self._local_batch(), split.device
        rank = self.world.rank if self.world is not None else 0
        rng = np.random.Generator(np.random.PCG64([self.seed, self.epoch + 1, rank, cycle]))
        share = split.blocks if split.blocks is not None else list(range(len(table.blocks)))
        order = [share[i] for i in rng.permutation(len(share))]
        buffer_X, buffer_y, held = None, None, 0
        pending: list[tuple[np.ndarray, np.ndarray]] = []
        waiting = 0
        for X, y in table.split_batches("train", order):
            if buffer_X is None:
                buffer_X = np.empty((self.shuffle_buffer, X.shape[1]), np.float32)
                buffer_y = np.empty((self.shuffle_buffer, *y.shape[1:]), y.dtype)
            take = min(self.shuffle_buffer - held, len(X))  # filling the buffer
            buffer_X[held : held + take], buffer_y[held : held + take] = X[:take], y[:take]
            held += take
            X, y = X[take:], y[take:]
            while len(X):  # each incoming row replaces a drawn row of the full buffer
                part = min(len(X), self.shuffle_buffer)
                drawn = rng.choice(self.shuffle_buffer, size=part, replace=False)
                pending.append((buffer_X[drawn].copy(), buffer_y[drawn].copy()))
                waiting += part
                buffer_X[drawn], buffer_y[drawn] = X[:part], y[:part]
                X, y = X[part:], y[part:]
            while waiting >= size:
                batch, pending, waiting = _take(pending, size, waiting)
                yield torch.as_tensor(batch[0], device=device), torch.as_tensor(batch[1], device=device)
        if held:
            last = rng.permutation(held)
            pending.append((buffer_X[:held][last], buffer_y[:held][last]))
            waiting += held
        while waiting:
            batch, pending, waiting = _take(pending, min(size, waiting), waiting)
            yield torch.as_tensor(batch[0], device=device), torch.as_tensor(batch[1], device=device)

    @torch.inference_mode()
    def evaluate(self, split) -> list[torch.Tensor]:
        if not isinstance(split, StreamSplit):
            return super().evaluate(split)
        if self._mode_matters:
            self.model.eval()
        return evaluate_stream(self.model, self.task, self.loss_fn, split.batches(), self.outputs_are_probabilities,
                               ranks=self.world is not None)


def evaluate_stream(model, task, loss_fn, batches, outputs_are_probabilities: bool, keep: list | None = None,
                    ranks: bool = False) -> list[torch.Tensor]:
    """[mean loss, score sum] over a streamed split, a block at a time; `keep`: each block's
    task.probabilities are appended to it (eval's metrics); `ranks`: each rank read its share, the sums are
    added over the ranks."""
    summed = distributed.sum_loss(loss_fn)
    loss_sum = score_sum = denominator = torch.zeros(())
    for X, y in batches:
        outputs = forward_in_chunks(model, X)
        loss_sum = loss_sum + summed(outputs, y).float()
        denominator = denominator + distributed.loss_denominator(loss_fn, y)
        score_sum = score_sum + task.score_sum(outputs, y, outputs_are_probabilities)
        if keep is not None:
            keep.append((task.probabilities(outputs, outputs_are_probabilities), y))
    if ranks:
        loss_sum, denominator, score_sum = distributed.all_reduce_sum([loss_sum, torch.as_tensor(denominator).float(),
                                                                      score_sum.float()])
    return [loss_sum / denominator, score_sum]


def _take(pending: list, size: int, waiting: int):
    """The first `size` rows of the pending pieces, and what is left."""
    parts, got = [], 0
    while got < size:
        X, y = pending[0]
        need = size - got
        if len(X) <= need:
            parts.append((X, y))
            pending = pending[1:]
            got += len(X)
        else:
            parts.append((X[:need], y[:need]))
            pending = [(X[need:], y[need:]), *pending[1:]]
            got = size
    batch = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return batch, pending, waiting - size
