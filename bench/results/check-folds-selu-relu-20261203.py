"""python cv.py TABLE SEED ACT: the stopping check's CV run (4 folds, 512 epochs, every epoch evaluated) with
model.activation=ACT on bench-quality's table/seed; prints per-fold last-epoch val_loss/val_acc and ES replay."""
import sys, json, statistics
from pathlib import Path
sys.path.insert(0, "/work/main")
import numpy as np, yaml
from bench import quality as q
from clftrain.config import apply_overrides, validate_config
from clftrain.runs.scaffold import scaffold_config
from clftrain.runs import stopping_check as sc
from clftrain.runs.lifecycle import train_in_memory
from clftrain.training import setup_group
name, seed, act = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t = q.TABLES[name]()
work = Path(f"/tmp/cvact/{name}-{seed}"); work.mkdir(parents=True, exist_ok=True)
whole = q.write_csv(work / "table.csv", t, np.arange(len(t.y)))
text, _ = scaffold_config(whole, t.target, work / "init.yaml")
raw = yaml.safe_load(text)
base = validate_config(apply_overrides(raw, {"seed": seed, "dataset.seed": seed}), base_dir=work)
cfg = validate_config(apply_overrides(raw, {"seed": seed, "dataset.seed": seed, "model.activation": act, **sc.check_settings(512)}), base_dir=work)
group = setup_group([cfg]); tr = group.trainer; tr.callbacks = []
train_in_memory(tr, cfg.threads, 600)
hs = sc.replica_histories(tr)
res = sc.compare(hs, "val_acc", True, base.train.early_stopping, base.train.restore_best)
last_loss = [h[-1]["val_loss"] for h in hs]
es_rows = [sc.early_stopped(h, base.train.early_stopping, True)[0] for h in hs]
out = {"table": name, "seed": seed, "act": act, "choice": res.choice,
       "last_acc": statistics.fmean(res.every_epoch), "es_acc": statistics.fmean(res.early_stopping),
       "last_loss": statistics.fmean(last_loss), "es_loss": statistics.fmean(r["val_loss"] for r in es_rows),
       "last_acc_folds": res.every_epoch, "es_acc_folds": res.early_stopping,
       "last_loss_folds": last_loss, "es_loss_folds": [r["val_loss"] for r in es_rows]}
print(json.dumps(out), flush=True)
