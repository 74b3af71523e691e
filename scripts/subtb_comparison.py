"""Summarises the logs of scripts/subtb_comparison.sh: for each grid and objective, mean ± std
over seeds of the exact TV, the papers' L1 and |log Z - log Z_hat| at fixed numbers of
trajectories, and the time per iteration. Reads only the documented HDF5 schema (README).

    /usr/bin/python3 scripts/subtb_comparison.py runs/subtb_comparison
"""
import pathlib
import sys

import h5py
import numpy as np

OBJECTIVES = ["tb", "db", "subtb", "fm"]
NAMES = {"tb": "TB", "db": "DB", "subtb": "SubTB(0.9)", "fm": "FM"}


def load(path):
    with h5py.File(path, "r") as f:
        ev = {k: f["eval/" + k][:] for k in ("trajectories", "iteration", "wall_s", "tv", "l1", "log_z_error")}
    return ev


def at(ev, key, budget):
    """The metric at the last evaluation with at most `budget` trajectories."""
    idx = np.searchsorted(ev["trajectories"], budget, side="right") - 1
    return ev[key][idx] if idx >= 0 else np.nan


def fmt(values, scientific=True):
    values = np.asarray(values, dtype=float)
    m, s = np.nanmean(values), np.nanstd(values)
    return f"{m:.2e} ± {s:.1e}" if scientific else f"{m:.2f} ± {s:.2f}"


def main(root):
    root = pathlib.Path(root)
    for grid in sorted(p for p in root.iterdir() if p.is_dir()):
        runs = {o: [load(p) for p in sorted(grid.glob(f"{o}_s*/log.h5"))] for o in OBJECTIVES}
        runs = {o: r for o, r in runs.items() if r}
        if not runs:
            continue
        final = min(r["trajectories"][-1] for rs in runs.values() for r in rs)
        # a quarter, half and all of the budget, snapped to evaluation points every run has
        points = next(iter(runs.values()))[0]["trajectories"]
        budgets = [int(points[np.searchsorted(points, final * f, side="right") - 1]) for f in (0.25, 0.5, 1.0)]
        print(f"\n### {grid.name} ({len(next(iter(runs.values())))} seeds)\n")
        head = " | ".join(f"TV @ {b:,}" for b in budgets) + " | " + " | ".join(f"L1 @ {b:,}" for b in budgets)
        print(f"| objective | {head} | abs(log Z err) @ {final:,} | wall ms / iteration |")
        print("|---" * (2 + 2 * len(budgets) + 1) + "|")
        for o, rs in runs.items():
            tv = [fmt([at(r, "tv", b) for r in rs]) for b in budgets]
            l1 = [fmt([at(r, "l1", b) for r in rs]) for b in budgets]
            lz = fmt([at(r, "log_z_error", final) for r in rs])
            ms = fmt([1e3 * r["wall_s"][-1] / r["iteration"][-1] for r in rs], scientific=False)
            print(f"| {NAMES[o]} | " + " | ".join(tv + l1) + f" | {lz} | {ms} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/subtb_comparison")
