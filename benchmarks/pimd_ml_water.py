"""Path integrals of ML water: one 32-bead step with the beads evaluated one after another against all beads in
one model call (`qmml.MLPotential.compute_copies`), side by side, and the most that batching could save.

    python benchmarks/pimd_ml_water.py                 # appends to RESULTS.md
    python benchmarks/pimd_ml_water.py --steps 3 --no-write

System: 64 waters (the 16-molecule liquid box of ``data/datasets/water_test.npz`` tiled 2 x 2 x 1), the
shipped ``water`` model (3 members), `PathIntegralLangevin` with 32 beads at 300 K, 0.25 fs, the same seed in
both runs (their trajectories must agree).  "One after another": the potential behind a `qmml.PotentialWrapper`
that changes nothing, so the integrator takes the default `compute_copies` (one `compute` per bead).  The bound:
one model call on a structure 32 times larger (the same 6,144 atoms as one periodic box), since the model's
cost is linear in atoms.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _revisions import append_results  # noqa: E402


def tiled_water(reps):
    from qmml.ml import Dataset

    frame = next(f for f in Dataset.load(ROOT / "data" / "datasets" / "water_test.npz").frames if f.cell is not None)
    cell = np.asarray(frame.cell)
    shifts = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1).reshape(-1, 3) @ cell
    x = (frame.positions[None] + shifts[:, None]).reshape(-1, 3)
    z = np.tile(frame.elements, len(shifts))
    return z, x, cell * np.asarray(reps)[:, None]


def main(argv=None) -> int:
    import torch

    import qmml

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--beads", type=int, default=32)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    z, x, cell = tiled_water((2, 2, 1))
    n_mol = len(z) // 3
    symbols = np.where(z == 8, "O", "H")
    bonds = [(3 * m, 3 * m + h) for m in range(n_mol) for h in (1, 2)]
    a, b, c = np.linalg.norm(cell, axis=1)
    system = qmml.System.from_arrays(symbols, x, box=[a, b, c, 90, 90, 90], residues=np.repeat(np.arange(n_mol), 3) + 1,
                                     bonds=bonds)
    model = qmml.load_model("water")

    class OneByOne(qmml.PotentialWrapper):
        """The same potential; compute_copies falls back to one compute per bead."""

    def run(potential):
        calls = []
        predict = model.predict

        def counted(*a, **k):
            calls.append(1)
            return predict(*a, **k)

        integrator = qmml.PathIntegralLangevin(0.25, 300.0, args.beads, seed=1)
        sim = qmml.Simulation(potential, integrator, temperature_K=300.0, seed=1, progress=False)
        sim.run(2)
        model.predict = counted
        try:
            start = time.perf_counter()
            sim.run(args.steps)
            step = (time.perf_counter() - start) / args.steps
        finally:
            del model.predict
        return step, len(calls) / args.steps, sim.state.positions

    one_step, one_calls, one_x = run(OneByOne(qmml.MLPotential(model, system)))
    step, calls, x_batched = run(qmml.MLPotential(model, system))
    same = float(np.abs(one_x - x_batched).max())

    zb, xb, cellb = tiled_water((2, 2, args.beads))  # every bead's 192 atoms side by side in one box
    groups = np.repeat(np.arange(len(zb) // 3), 3)
    model.predict(zb, xb, cell=cellb, groups=groups)
    best = []
    for _ in range(3):
        t0 = time.perf_counter()
        model.predict(zb, xb, cell=cellb, groups=groups)
        best.append(time.perf_counter() - t0)
    bound = min(best)
    rows = ["| quantity | value |", "| --- | --- |",
            f"| PIMD step, {args.beads} beads x {len(z)} atoms, beads one after another | {one_step:.3f} s "
            f"({one_calls:.0f} model calls) |",
            f"| PIMD step, all beads in one model call | {step:.3f} s ({calls:.0f} model call) |",
            f"| speed-up | {one_step / step:.2f}x |",
            f"| centroid positions of the two runs after {args.steps + 2} steps, largest difference | {same:.1e} Å |",
            f"| one call on {len(zb):,} atoms (all beads as one box: the bound) | {bound:.3f} s |"]
    table = "\n".join(rows)
    print(table)
    if not args.no_write:
        append_results("Path integrals of ML water: 32 beads of 64 waters", "python benchmarks/pimd_ml_water.py",
                       "water model float64, torch 2 threads.", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
