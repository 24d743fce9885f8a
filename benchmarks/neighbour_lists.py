"""Neighbour lists of the environment model, side by side in one process: qmml's torch `CellList` (what the
model used before) against the vesin list the model uses now (`qmml.ml.model._LazyPairs`: one full vesin list,
sorted by centre, handed out in the model's chunks of 1,024 atoms), for periodic water boxes at the model's
5 Å cutoff.  Both must give the same pairs.

    python benchmarks/neighbour_lists.py              # 3k and 35k atoms; appends to RESULTS.md
    python benchmarks/neighbour_lists.py --large      # also 329k atoms
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def cell_list_pairs(x, cutoff, cell, chunk=1024):
    from qmml.periodic.neighbours import CellList

    cells = CellList(x, cutoff, cell)
    return [cells.pairs(torch.arange(a, min(len(x), a + chunk))) for a in range(0, len(x), chunk)]


def vesin_pairs(x, cutoff, cell, chunk=1024):
    from qmml.ml.model import _LazyPairs

    return list(_LazyPairs(x, cutoff, cell, [(a, min(len(x), a + chunk)) for a in range(0, len(x), chunk)]))


def same_pairs(a, b) -> bool:
    def keys(chunks):
        out = set()
        for i, j, s in chunks:
            out |= set(zip(i.tolist(), j.tolist(), map(tuple, np.round(s.numpy(), 3).tolist())))
        return out

    return keys(a) == keys(b)


def best_of(fn, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    from ml_environment_scaling import water_box

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also 329k atoms")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rows = ["| atoms | pairs | CellList s | vesin s | speed-up | same pairs |", "| --- | --- | --- | --- | --- | --- |"]
    for k in (4, 9, 19) if args.large else (4, 9):
        z, x, _, cell = water_box(k)
        xt, ct = torch.as_tensor(x), torch.as_tensor(cell)
        old, new = cell_list_pairs(xt, 5.0, ct), vesin_pairs(xt, 5.0, ct)
        same = same_pairs(old, new) if len(x) < 50_000 else "not compared"
        t_old = best_of(lambda: cell_list_pairs(xt, 5.0, ct))
        t_new = best_of(lambda: vesin_pairs(xt, 5.0, ct))
        n_pairs = sum(len(i) for i, _, _ in new)
        rows.append(f"| {len(x):,} | {n_pairs:,} | {t_old:.3f} | {t_new:.3f} | {t_old / t_new:.1f}x | {same} |")
        print(rows[-1], flush=True)
    text = "\n".join(rows)
    print(text)
    if not args.no_write:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as handle:
            handle.write(f"\n## Neighbour lists of the environment model: CellList vs vesin ({datetime.date.today()})\n\n"
                         f"`python benchmarks/neighbour_lists.py`; {platform.machine()}, {os.cpu_count()} cores, "
                         f"{torch.get_num_threads()} torch thread(s); best of three, 5 Å cutoff, periodic water, "
                         f"the model's 1,024-atom chunks.  The model now uses vesin.\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
