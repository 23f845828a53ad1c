"""Run orchestration: `fit` and `resume` (fit.py) dispatch to the one-seed and the many-seed runner
(single.py, seeds.py), siblings over the shared lifecycle (lifecycle.py) and set-up
(training/setup.py); `sweep` (sweep.py) trains grids of configs as groups of replica runs; `fit --nproc`
(launch.py) starts the torchrun launch of data-parallel processes; `report` (report.py) writes report.html of a
run, a sweep or several runs, and fit takes the boundary's snapshots for it (snapshots.py)."""

from clftrain.faces import lazy_face

EXPORTS = {  # public name -> the module of this package that defines it
    "fit_run": "fit", "resume_run": "fit", "write_report": "report", "launch_fit": "launch", "launch_sweep": "launch", "scaffold_config": "scaffold", "write_scaffold": "scaffold", "write_exit_code": "launch",
    **dict.fromkeys(["FitResult", "SIGNAL_EXIT_CODES", "RESUMABLE_KEYS", "RunRecorder", "assemble_callbacks",
                     "training_session"],
                    "lifecycle"),
    **dict.fromkeys(["plan_sweep", "run_sweep", "parse_grid", "shape_key", "SweepPlan", "SweepResult",
                     "SWEEP_CSV", "SWEEP_JSON", "PER_RUN_KEYS"], "sweep"),
}
__getattr__, __dir__ = lazy_face(__name__, EXPORTS)
