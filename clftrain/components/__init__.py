"""What a config can name: activations, weight initialisations, losses, optimizers, schedulers and tasks.

Each is a registry of entries that carry their own facts (a loss's options and per-replica form, an
optimizer's `elementwise` flag, a task's metric and output layout), so adding an entry is the whole
change: the config, the loops and the contract test (tests/test_contract.py) pick it up.
"""

from clftrain.faces import lazy_face

EXPORTS = {  # public name -> the module of this package that defines it
    "ACTIVATIONS": "activations", "activation_curves": "activations",
    "INITS": "inits",
    "LOSSES": "losses", "LOSS_OPTIONS": "losses", "Loss": "losses", "expects_probabilities": "losses",
    "losses_taking": "losses",
    "OPTIMIZERS": "optimizers", "Optimizer": "optimizers", "build_optimizer": "optimizers",
    "SCHEDULERS": "schedulers",
    "TASKS": "tasks", "Task": "tasks", "get_task": "tasks", "classes_task": "tasks",
    "metric_higher_is_better": "tasks",
}
__getattr__, __dir__ = lazy_face(__name__, EXPORTS)
