"""Summarises the logs of a comparison (scripts/*_comparison.sh): runs laid out as
ROOT/<setting>/<variant>_s<seed>/log.h5. For each setting, one row per variant: mean ± std over
the seeds of each metric of /eval at a quarter, half and all of the budget (trajectories seen,
snapped to evaluation points every run has), and the wall time per iteration. Reads only the
documented HDF5 schema (README).

    /usr/bin/python3 scripts/comparison_table.py ROOT [METRIC ...]    (ROOT: a comparison or one setting)
    /usr/bin/python3 scripts/comparison_table.py runs/subtb_comparison tv l1 log_z_error
    /usr/bin/python3 scripts/comparison_table.py runs/led_comparison top_k_mean_reward inclusion_error

Variants are listed in the order of VARIANTS below, unknown ones after them by name.
"""
import pathlib
import re
import sys

import h5py
import numpy as np

VARIANTS = {
    "tb": "TB", "db": "DB", "subtb": "SubTB(0.9)", "fm": "FM",
    "fl_subtb": "FL-SubTB", "led_subtb": "LED-SubTB", "led_subtb_h256": "LED-SubTB, potential 2x256",
    "uniform": "uniform P_B", "learned": "naive (learned through the loss)", "maxent": "max-entropy P_B",
    "tlm": "TLM",
}


def load(path, metrics):
    with h5py.File(path, "r") as f:
        if "eval" not in f:  # a run still before its first evaluation
            return None
        ev = f["eval"]
        return {k: ev[k][:] for k in ["trajectories", "iteration", "wall_s"] + [m for m in metrics if m in ev]}


def at(ev, key, budget):
    """The metric at the last evaluation with at most `budget` trajectories."""
    if key not in ev:
        return np.nan
    idx = np.searchsorted(ev["trajectories"], budget, side="right") - 1
    return ev[key][idx] if idx >= 0 else np.nan


def fmt(values, scientific=True):
    values = np.asarray(values, dtype=float)
    if np.all(np.isnan(values)):
        return "–"
    m, s = np.nanmean(values), np.nanstd(values)
    return f"{m:.2e} ± {s:.1e}" if scientific else f"{m:.3g} ± {s:.2g}"


def variants_of(setting):
    names = sorted({re.sub(r"_s\d+$", "", p.parent.name) for p in setting.glob("*_s*/log.h5")})
    order = list(VARIANTS)
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def main(root, metrics):
    root = pathlib.Path(root)
    settings = [root] if any(root.glob("*_s*/log.h5")) else sorted(p for p in root.iterdir() if p.is_dir())
    for setting in settings:
        runs = {v: [load(p, metrics) for p in sorted(setting.glob(f"{v}_s*/log.h5"))] for v in variants_of(setting)}
        runs = {v: [r for r in rs if r is not None] for v, rs in runs.items()}
        runs = {v: rs for v, rs in runs.items() if rs}
        if not runs:
            continue
        shortest = min((r for rs in runs.values() for r in rs), key=lambda r: r["trajectories"][-1])
        final, points = shortest["trajectories"][-1], shortest["trajectories"]
        budgets = [int(points[max(np.searchsorted(points, final * f, side="right") - 1, 0)]) for f in (0.25, 0.5, 1.0)]
        budgets = sorted(set(budgets))
        seeds = sorted({len(rs) for rs in runs.values()})
        print(f"\n### {setting.name} ({'/'.join(map(str, seeds))} seeds)\n")
        head = " | ".join(f"{m} @ {b:,}" for m in metrics for b in budgets)
        print(f"| variant | {head} | wall ms / iteration |")
        print("|---" * (2 + len(metrics) * len(budgets)) + "|")
        for v, rs in runs.items():
            cells = [fmt([at(r, m, b) for r in rs]) for m in metrics for b in budgets]
            ms = fmt([1e3 * r["wall_s"][-1] / r["iteration"][-1] for r in rs], scientific=False)
            print(f"| {VARIANTS.get(v, v)} | " + " | ".join(cells) + f" | {ms} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/subtb_comparison",
         sys.argv[2:] if len(sys.argv) > 2 else ["tv", "l1", "log_z_error"])
