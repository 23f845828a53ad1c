"""Training: the model an MLP config describes (model.py) and its stacked replicas (replicas.py), the epoch
loop both trainers share (loop.py) with the deciding callbacks (callbacks.py), the one-model and the
replica trainer (trainer.py, replica_trainer.py), the trainer of a streamed table (stream_trainer.py), data-parallel ranks under torchrun (distributed.py), and
everything a run needs built from a Config (setup.py). Nothing here touches files or the console."""

from clftrain.faces import lazy_face

EXPORTS = {  # public name -> the module of this package that defines it
    **dict.fromkeys(["build_model", "describe_model", "count_parameters", "load_weights", "forward_in_chunks",
                     "first_mismatch", "LayerInfo", "EVAL_ROWS"], "model"),
    **dict.fromkeys(["StackedMLP", "ReplicaSelect", "ReplicaEnsemble", "ReplicaLoss", "clip_grad_norms_"],
                    "replicas"),
    **dict.fromkeys(["Split", "Callback", "EpochLoop"], "loop"),
    **dict.fromkeys(["BestTracker", "EarlyStopping", "monitor_mode", "improves"], "callbacks"),
    "Trainer": "trainer",
    **dict.fromkeys(["StreamTrainer", "StreamSplit", "evaluate_stream"], "stream_trainer"),
    **dict.fromkeys(["ReplicaTrainer", "Member", "ReplicaBest", "mean_row", "mean_history", "NOT_IN_ROWS"],
                    "replica_trainer"),
    **dict.fromkeys(["SeedSpread", "check_spread", "slice_state", "slice_best"], "seed_spread"),
    **dict.fromkeys(["setup_single", "setup_group", "check_group", "check_data", "SingleSetup", "Group", "build_trainer",
                     "build_loss", "loss_weights", "needs_training_data", "seed_everything", "device_splits",
                     "build_scheduler", "resolve_task", "check_batch_size", "decision_monitor", "stack_replicas",
                     "check_stream_shares", "refuse_streamed"],
                    "setup"),
    **dict.fromkeys(["resolve_device", "training_threads", "ThreadChooser", "current_threads"], "device"),
}
__getattr__, __dir__ = lazy_face(__name__, EXPORTS)
