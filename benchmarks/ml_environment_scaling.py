"""Environment model cost per atom for 3k / 30k / 300k water atoms (periodic boxes).

One call = energy + forces + charges + charge response (a fixed random potential at every atom),
i.e. what a QM/ML step asks of the environment.  Each size runs in its own process so its peak
memory (max RSS) is its own.  Boxes are k x k x k tilings of a 16-molecule GFN2-xTB liquid-water box
from ``data/datasets/water_test.npz`` with 0.05 Å noise.

    python benchmarks/ml_environment_scaling.py            # appends to benchmarks/RESULTS.md
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TILINGS = (4, 9, 19)  # 3,072 / 34,992 / 329,232 atoms


def water_box(k: int):
    from qmml.ml import Dataset

    ds = Dataset.load(ROOT / "data" / "datasets" / "water_test.npz")
    frame = next(f for f in ds.frames if f.cell is not None)
    cell = frame.cell
    shifts = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3) @ cell
    x = (frame.positions[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    x += np.random.default_rng(0).normal(0, 0.05, x.shape)
    z = np.tile(frame.elements, k**3)
    groups = np.repeat(np.arange(len(z) // 3), 3)
    return z, x, groups, cell * k


def measure(k: int, dtype: str) -> dict:
    import torch

    from qmml import load_model

    torch.set_num_threads(int(os.environ.get("QMML_BENCH_THREADS", "2")))
    model = load_model("water", dtype=getattr(torch, dtype), device="cpu")
    z, x, groups, cell = water_box(k)
    phi = np.random.default_rng(1).normal(0, 1.0, len(z))
    model.predict(z[:48], x[:48], groups=groups[:48], potential=phi[:48])  # warm-up
    times = []
    for _ in range(2):  # best of two for every size, so all sizes are measured alike
        t0 = time.perf_counter()
        p = model.predict(z, x, cell=cell, groups=groups, potential=phi)
        times.append(time.perf_counter() - t0)
    assert np.isfinite(p.forces).all()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"atoms": len(z), "seconds": min(times), "us_per_atom": min(times) / len(z) * 1e6, "peak_MB": peak_mb}


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(measure(int(sys.argv[2]), sys.argv[3])))
        return
    dtype = "float32"
    rows = []
    for k in TILINGS:
        out = subprocess.run([sys.executable, __file__, "--one", str(k), dtype], capture_output=True, text=True,
                             check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    growth = rows[-1]["us_per_atom"] / rows[0]["us_per_atom"]
    print(f"time per atom, largest / smallest: {growth:.2f} (target <= 1.15)")
    lines = [f"\n## Environment model scaling, water ({date.today()}, {platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()})\n",
             f"Shipped `water` model (all 3 committee members), {dtype}, CPU, 2 threads; energy + forces + charges + charge response per call.\n",
             "| atoms | time (s) | time per atom (µs) | peak memory (MB) |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['atoms']:,} | {r['seconds']:.2f} | {r['us_per_atom']:.1f} | {r['peak_MB']:.0f} |" for r in rows]
    lines.append(f"\nTime per atom grows {100 * (growth - 1):+.0f}% from {rows[0]['atoms']:,} to {rows[-1]['atoms']:,} atoms "
                 "(target: at most +15%).\n")
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
        fh.write("\n".join(lines))


if __name__ == "__main__":
    main()
