"""A run with seeds spread over the ranks of a torchrun launch: each rank trains a contiguous slice of the
seeds as one batched model (replica_trainer.py), and the ranks exchange what the run directory needs.

The replicas never interact, so no gradient crosses ranks; what crosses (SeedSpread, one collective per
evaluated epoch, run after the deciders so that it carries their decisions):
  - every rank's new metrics.csv rows, each replica's best row, and which replicas stopped or diverged:
    rank 0 records the whole run (its console shows the mean over every replica); every rank learns
    whether replicas still train elsewhere, so that all stop at the same epoch;
  - at a save (rank 0's pacing: every `log_every` epochs once `checkpoint_seconds` passed, and at the
    end) a second collective brings every slice's state to rank 0, which saves one checkpoint, the one
    a single process writes (merge_states); a resume on any number of ranks cuts it again (slice_state).
A replica's numbers are its solo run's, to float rounding, whatever the number of ranks: each is seeded,
shuffled and dropped out by its own seed (setup.py), as in one process.
"""

from __future__ import annotations

import math
import time

import torch

from clftrain.errors import UserError
from clftrain.training import distributed
from clftrain.training.distributed import World
from clftrain.training.loop import Callback, EpochLoop
from clftrain.training.replica_trainer import Member, mean_row


def check_spread(seeds: list[int], processes: int) -> None:
    if len(seeds) < processes:
        raise UserError(f"seeds: {len(seeds)} seed(s) cannot be spread over {processes} processes (each trains at "
                        f"least one replica); use at least {processes} seeds or fewer processes")


def seed_slice(seeds: list[int], world: World) -> slice:
    """This rank's contiguous share of the seeds (distributed.shard's: the first ranks get one more)."""
    return distributed.shard(len(seeds), world)


class SeedSpread(Callback):
    """The exchange of a spread run (see the module's docstring), on every rank, last of the deciders.

    On rank 0 it holds the whole run: `history` (every replica's rows, in the order one process records
    them: epoch, then seed), `best_rows`, `diverged_at`, `stopped_at` (one entry per seed), `best_version`
    (moves when any replica's best moves), and `states` (every slice's state, gathered for a save at
    `states_epoch`)."""

    def __init__(self, member: Member, world: World, seeds: list[int], every: int, interval: float,
                 history: list[dict] | None = None) -> None:
        self.member, self.world, self.seeds, self.every, self.interval = member, world, seeds, every, interval
        self.history = list(history or [])
        self.best_rows: list[dict | None] = [None] * len(seeds)
        self.diverged_at: list[int | None] = [None] * len(seeds)
        self.stopped_at: list[int | None] = [None] * len(seeds)
        self.best_version = 0
        self.states: list[dict] | None = None
        self.states_epoch: int | None = None
        self.restored = False
        self._gathered_at = time.monotonic()

    def slices(self) -> list[slice]:
        """Each rank's share of the seeds."""
        world = self.world
        return [seed_slice(self.seeds, World(rank, world.size, world.backend)) for rank in range(world.size)]

    def restore(self, payload: dict, best: dict | None) -> None:
        """A resumed run's records (rank 0's view of every replica) from its checkpoints."""
        self.history = [dict(row) for row in payload["history"]]
        self.diverged_at = list(payload["diverged_at"])
        self.stopped_at = list(payload.get("stopped_at") or [None] * len(self.seeds))
        if best is not None:
            self.best_rows = list(best["metrics"])

    def on_epoch_end(self, trainer: EpochLoop, row: dict[str, float]) -> None:
        member = self.member
        due = self.world.is_main and trainer.epoch % self.every == 0 and \
            time.monotonic() - self._gathered_at >= self.interval
        everyone = distributed.gather_all({
            "rows": [r for r in member.latest if r is not None], "due": due,
            "active": any(member.active(i) for i in range(len(member.seeds))),
            "all_diverged": all(member.diverged_at), **self._records(member)})
        rows = [r for rank in everyone for r in rank["rows"]]
        others = [rank for r, rank in enumerate(everyone) if r != self.world.rank]
        trainer.elsewhere = (any(o["active"] for o in others), all(o["all_diverged"] for o in others))
        trainer.replica_rows = rows
        live = [r for r in rows if math.isfinite(r["train_loss"])]
        if rows:  # the callbacks after this one (console, writers) see the mean over every replica
            row.clear()
            row.update(mean_row(live or rows))
        if self.world.is_main:
            self.history.extend(rows)
            self._take_records(everyone)
        if everyone[0]["due"]:
            self._gather_states(trainer)

    def on_fit_end(self, trainer: EpochLoop) -> None:
        """The state of the end (after each replica's best weights came back) for the last save."""
        self._gather_states(trainer)

    def _records(self, member: Member) -> dict:
        return {"best_rows": member.best.rows, "best_version": member.best.version,
                "diverged_at": member.diverged_at, "stopped_at": member.stopped_at}

    def _take_records(self, everyone: list[dict]) -> None:
        self.best_rows = [r for rank in everyone for r in rank["best_rows"]]
        self.diverged_at = [e for rank in everyone for e in rank["diverged_at"]]
        self.stopped_at = [e for rank in everyone for e in rank["stopped_at"]]
        self.best_version = sum(rank["best_version"] for rank in everyone)

    def _gather_states(self, trainer: EpochLoop) -> None:
        member = self.member
        state = {k: v for k, v in trainer.member_state(member).items() if k != "history"}  # rank 0 has the rows
        best = member.best
        mine = on_cpu({"state": state, "best_state": best.state, "restored": best.restored, **self._records(member)})
        gathered = distributed.gather_to_main(mine)
        self._gathered_at = time.monotonic()
        if gathered is not None:
            self.states, self.states_epoch = gathered, trainer.epoch
            self.restored = all(g["restored"] for g in gathered)
            self._take_records(gathered)

    # ------------------------------------------------------------------ rank 0: the one checkpoint
    def checkpoint_state(self) -> dict:
        """The member_state one process holding every replica would save (replica_trainer.member_state)."""
        return {**merge_states([g["state"] for g in self.states]), "history": self.history}

    def best_state(self) -> dict[str, torch.Tensor] | None:
        parts = [g["best_state"] for g in self.states]
        return None if any(p is None for p in parts) else {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


# ---------------------------------------------------------------------- one checkpoint from slices, and back
def merge_states(states: list[dict]) -> dict:
    """The slices' member_state as one: what has a row per replica joined in rank order (= seed order),
    what the replicas share (epoch, schedule, optimizer hyperparameters, step counts) taken from rank 0."""
    first = states[0]
    return {
        "model": {k: torch.cat([s["model"][k] for s in states]) for k in first["model"]},
        "optimizer": _merge_optimizer([s["optimizer"] for s in states]),
        "scheduler": first["scheduler"],
        "rates": None if first["rates"] is None else {
            key: [x for s in states for x in s["rates"][key]] for key in first["rates"]},
        "early_stopping": None if first["early_stopping"] is None else {
            key: [x for s in states for x in s["early_stopping"][key]] for key in first["early_stopping"]},
        "epoch": first["epoch"],
        "seconds": max(s["seconds"] for s in states),
        "rng": {"shuffle": [g for s in states for g in s["rng"]["shuffle"]],
                "dropout": None if first["rng"]["dropout"] is None else
                [g for s in states for g in s["rng"]["dropout"]]},
        "diverged_at": [e for s in states for e in s["diverged_at"]],
        "stopped_at": [e for s in states for e in s["stopped_at"]],
        "partial": None if first["partial"] is None else {
            **first["partial"], "order": torch.cat([s["partial"]["order"] for s in states]),
            "sums": [torch.cat(parts) for parts in zip(*(s["partial"]["sums"] for s in states))]},
    }


def _merge_optimizer(dicts: list[dict]) -> dict:
    """Optimizer state dicts of the slices' stacked parameters: each per-replica tensor (momentum, Adam's
    moments: a leading replica dimension) joined; a number or 0-d tensor (Adam's step) is the same in all."""
    merged = {}
    for index, values in dicts[0]["state"].items():
        merged[index] = {key: torch.cat([d["state"][index][key] for d in dicts]) if _per_replica(value) else value
                         for key, value in values.items()}
    return {"state": merged, "param_groups": dicts[0]["param_groups"]}


def slice_state(state: dict, rows: slice, seeds: list[int]) -> dict:
    """The part of a checkpoint's member_state (merged or from one process) that trains `rows` of its replicas
    (`seeds`: theirs): the inverse of merge_states."""
    cut = lambda values: None if values is None else list(values)[rows]  # noqa: E731
    partial = state.get("partial")
    return {
        **state,
        "model": {k: v[rows] for k, v in state["model"].items()},
        "optimizer": {"state": {index: {key: value[rows] if _per_replica(value) else value
                                        for key, value in values.items()}
                                for index, values in state["optimizer"]["state"].items()},
                      "param_groups": state["optimizer"]["param_groups"]},
        "rates": None if state["rates"] is None else {k: cut(v) for k, v in state["rates"].items()},
        "early_stopping": None if state.get("early_stopping") is None else {
            k: cut(v) for k, v in state["early_stopping"].items()},
        "history": [row for row in state["history"] if int(row["seed"]) in set(seeds)],
        "rng": {"shuffle": cut(state["rng"]["shuffle"]), "dropout": cut(state["rng"]["dropout"])},
        "diverged_at": cut(state["diverged_at"]),
        "stopped_at": cut(state.get("stopped_at") or [None] * len(state["diverged_at"])),
        "partial": None if partial is None else {
            **partial, "order": partial["order"][rows], "sums": [s[rows] for s in partial["sums"]]},
    }


def slice_best(best: dict | None, rows: slice) -> dict | None:
    """A best.pt's weights and rows for `rows` of its replicas."""
    if best is None:
        return None
    return {**best, "model": {k: v[rows] for k, v in best["model"].items()}, "metrics": list(best["metrics"])[rows]}


def _per_replica(value) -> bool:
    return torch.is_tensor(value) and value.dim() > 0


def on_cpu(obj):
    """`obj` with every tensor in it moved to the CPU (what crosses ranks: a GPU tensor would unpickle on the
    sender's device)."""
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(on_cpu(v) for v in obj)
    return obj
