#!/usr/bin/env bash
# The TB paper's bit-sequence comparison at this machine's budget: TB, DB and SubTB(0.9) for
# words of k = 1, 2, 4, 6, 8 and 10 bits (configs/bitseq.toml: n = 120, 60 modes, append form,
# MLP 2x256, batch 16), ITERATIONS each (default 3000), then one table row per run: modes found
# (among every state trained on), Spearman(log p_T, log R) on the test set, top-100 mean reward
# and ms per iteration.
#   scripts/bitseq_table.sh [ITERATIONS]        (OUT=runs/bitseq_table, JOBS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/bitseq_table}
iters=${1:-3000}
for k in 1 2 4 6 8 10; do
  for obj in tb db subtb; do
    echo "$OUT/k${k}_$obj configs/bitseq.toml --set env.word=$k --set objective.kind=$obj --set train.iterations=$iters --set eval.every=$iters"
  done
done | scripts/run_jobs.sh
"${PYTHON:-/usr/bin/python3}" - "$OUT" <<'PY'  # needs h5py
import sys, glob, os, h5py
print("| k | objective | modes found (of 60) | test Spearman | top-100 mean R | ms/iteration |")
print("|---|---|---|---|---|---|")
rows = []
for d in glob.glob(os.path.join(sys.argv[1], "k*_*")):
    if not os.path.isfile(os.path.join(d, "log.h5")):
        continue
    k, obj = os.path.basename(d)[1:].split("_", 1)
    with h5py.File(os.path.join(d, "log.h5"), "r") as f:
        e = f["eval"]
        wall = f["eval/wall_s"][-1]
        it = f["eval/iteration"][-1]
        rows.append((int(k), obj, int(e["modes_found"][-1]), e["test_spearman"][-1], e["top_k_mean_reward"][-1],
                     1000 * wall / max(it, 1)))
order = {"tb": 0, "db": 1, "subtb": 2}
for k, obj, m, rho, top, ms in sorted(rows, key=lambda r: (r[0], order.get(r[1], 9))):
    print(f"| {k} | {obj} | {m} | {rho:.3f} | {top:.3f} | {ms:.1f} |")
PY
