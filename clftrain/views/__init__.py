"""What a person sees: the console while training (progress.py) and after (tables.py), and the figures
(plots.py, matplotlib, imported only to draw). Views take plain data: rows, summaries, arrays and
callables, never a trainer's insides."""

from clftrain.faces import lazy_face

EXPORTS = {  # public name -> the module of this package that defines it
    **dict.fromkeys(["ConsoleProgress", "SweepProgress", "show_model", "format_row"], "progress"),
    **dict.fromkeys(["show_result", "show_seeds_result", "show_sweep", "show_eval", "show_runs", "show_compare",
                     "show_data_check"],
                    "tables"),
    **dict.fromkeys(["metric_text", "is_fraction"], "format"),
}
__getattr__, __dir__ = lazy_face(__name__, EXPORTS)
