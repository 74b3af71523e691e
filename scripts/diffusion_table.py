"""The table of the diffusion-sampler comparison (scripts/reproduce_diffusion.sh): for each target
and method, mean ± std over the seeds of the final evaluation's Delta log Z (elbo_error), Delta
log Z^RW (log_z_is_error), W2^2 (w2_squared) and EUBO, and the training time per iteration, as a
Markdown table. Reads runs laid out as ROOT/<target>/<method>_s<seed>/log.h5 through the
documented HDF5 schema (README); runs still writing are opened with SWMR and skipped until they
have evaluated at their last iteration.

    /usr/bin/python3 scripts/diffusion_table.py [ROOT]      (default runs/diffusion)
"""
import pathlib
import re
import sys

import h5py
import numpy as np

METHODS = {"tb": "TB", "tb_expl": "TB + expl.", "vargrad_expl": "VarGrad + expl.", "fl_subtb": "FL-SubTB",
           "tb_expl_ls": "TB + expl. + LS"}
COLUMNS = [("elbo_error", "ΔlogZ"), ("log_z_is_error", "ΔlogZ^RW"), ("w2_squared", "W2²"), ("eubo", "EUBO")]


def final_row(path):
    """The last /eval row of a finished run (a dict), or None."""
    try:
        with h5py.File(path, "r", swmr=True) as f:
            if "eval" not in f or "samples" not in f:  # /samples is written at the end
                return None
            ev = f["eval"]
            return {name: float(ev[name][-1]) for name in ev}
    except OSError:
        return None


def ms_per_iteration(out_file):
    m = re.search(r"training ([0-9.]+) ms/iteration", out_file.read_text()) if out_file.exists() else None
    return float(m.group(1)) if m else float("nan")


def fmt(values):
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std():.3f}" if len(v) else "–"


def main(root):
    root = pathlib.Path(root)
    for target in sorted(p for p in root.iterdir() if p.is_dir()):
        print(f"\n**{target.name}**\n")
        print("| method | seeds | iterations | " + " | ".join(c[1] for c in COLUMNS) + " | ms/iteration |")
        print("|---|---|---|" + "---|" * len(COLUMNS) + "---|")
        for key, label in METHODS.items():
            rows, times = [], []
            for run in sorted(target.glob(f"{key}_s*/log.h5")):
                row = final_row(run)
                if row is None:
                    continue
                rows.append(row)
                times.append(ms_per_iteration(run.parent.with_suffix(".out")))
            if not rows:
                continue
            its = sorted({int(r["iteration"]) for r in rows})
            cells = [fmt([r[c] for r in rows if c in r]) for c, _ in COLUMNS]
            print(f"| {label} | {len(rows)} | {','.join(map(str, its))} | " + " | ".join(cells) +
                  f" | {np.nanmedian(times):.0f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/diffusion")
