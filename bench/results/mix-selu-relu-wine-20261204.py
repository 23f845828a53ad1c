"""python mix.py TABLE SEED: fit DATA (SELU, as settled) on bench-quality's split, then its settled config with
ReLU, then the average of the two ensembles' test probabilities. Prints one JSON line."""
import sys, json, subprocess, csv
from pathlib import Path
sys.path.insert(0, "/work/main")
import numpy as np, yaml
from bench import quality as q
name, seed = sys.argv[1], int(sys.argv[2])
t = q.TABLES[name]()
train, test = q.split(t, seed)
work = Path(f"/tmp/mix/{name}-{seed}"); work.mkdir(parents=True, exist_ok=True)
whole = q.write_csv(work / "table.csv", t, np.arange(len(t.y)))
test_csv = q.write_csv(work / "test.csv", t, test)
ct = ["/work/main/.venv/bin/clftrain"]
def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode: raise SystemExit(p.stderr[-2000:] + p.stdout[-2000:])
    return p.stdout
selu = work / "selu"
if not selu.exists():
    run([*ct, "fit", str(whole), "--target", t.target, "--seed", str(seed), "--set", f"dataset.seed={seed}",
         "--out", str(selu), "-q", "--no-report"])
cfg = yaml.safe_load((selu / "config.yaml").read_text())
relu = work / "relu"
if not relu.exists():
    cfg["model"]["activation"] = "relu"
    (work / "relu.yaml").write_text(yaml.safe_dump(cfg))
    run([*ct, "fit", str(work / "relu.yaml"), "--out", str(relu), "-q", "--no-report"])
def probs(run_dir):
    out = run([*ct, "predict", str(run_dir), str(test_csv)])
    rows = list(csv.DictReader(out.splitlines()))
    cols = [c for c in rows[0] if c.startswith("prob")]
    return cols, np.array([[float(r[c]) for c in cols] for r in rows])
cols, ps = probs(selu)
cols2, pr = probs(relu)
assert cols == cols2
labels = [c.split("prob_", 1)[1] if "prob_" in c else c for c in cols]
y = np.array([str(v) for v in t.y[test]])
acc = lambda p: float(np.mean(np.array(labels)[p.argmax(1)] == y))
rec = json.loads((selu / "auto_fit.json").read_text())
print(json.dumps({"table": name, "seed": seed, "selu": acc(ps), "relu": acc(pr), "mix": acc((ps + pr) / 2),
                  "members": rec["final"]["members"], "labels": labels}), flush=True)
