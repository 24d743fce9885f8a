"""What the ML environment costs in one QM/ML step, for two revisions side by side on one machine.

    python benchmarks/environment_step.py --base 6ce3ff7                    # appends to RESULTS.md
    python benchmarks/environment_step.py --base HEAD --sizes 4 --rounds 1 --no-write

One step asks the environment for its energy and charges before the QM calculation and, after it, for the
forces and strain derivative with the charge response to the QM potential (`MLEnvironment.evaluate`, then
``forces(g)`` and ``strain_derivative(g)`` with a fixed random g).  That sequence exists in every revision, so
the same child script times both.  Systems: one QM water in a periodic k x k x k tiling of the 16-molecule
liquid box of ``data/datasets/water_test.npz`` (k = 4: 3,072 atoms; k = 9: 34,992), with the shipped
``water`` model (networks only) and ``organic_condensed`` (networks + DSF Coulomb + D3 dispersion +
bonded baseline + embedding head).  Each (revision, model, size) runs in its own fresh process, revisions
alternating, best of ``--repeats`` calls after one warm-up; peak memory is the process's max RSS.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _revisions import append_results, run_child, short_revision, worktree  # noqa: E402

CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[4])
import qmml
from qmml.environments.ml import MLEnvironment
from ml_environment_scaling import water_box

model_name, k, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
z, x, groups, cell = water_box(k)
n = len(z)
system = qmml.System.from_arrays(np.where(z == 8, "O", "H"), x, box=[cell[0, 0], cell[1, 1], cell[2, 2], 90, 90, 90],
                                 residues=groups + 1, bonds=[(3 * i, 3 * i + b) for i in range(n // 3) for b in (1, 2)])
part = qmml.partition(system, [0, 1, 2], charge=0)
path = "water" if model_name == "water" else f"data/models/{model_name}.pt"
env = MLEnvironment(qmml.load_model(path))
g = np.random.default_rng(1).normal(0, 0.5, len(part.env_atoms))
times = []
for _ in range(repeats + 1):
    t0 = time.perf_counter()
    e = env.evaluate(system.positions, part, "additive", cell=system.cell)
    f = e.forces(g)
    s = e.strain_derivative(g)
    times.append(time.perf_counter() - t0)
    del e
print(json.dumps({"atoms": n, "seconds": min(times[1:]),
                  "force_norm": float(np.linalg.norm(f)), "peak_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_once(tree: Path, model: str, k: int, repeats: int) -> dict:
    return run_child(tree, CHILD, model, k, repeats, ROOT / "benchmarks")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare the working tree against")
    parser.add_argument("--models", nargs="+", default=["water", "organic_condensed"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[4, 9], help="tilings k (48 k^3 atoms)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    revision = short_revision(args.base)
    rows = []
    with worktree(revision) as base:
        for model in args.models:
            for k in args.sizes:
                best = {}
                for _ in range(args.rounds):
                    for name, tree in ((revision, base), ("working tree", ROOT)):
                        r = run_once(tree, model, k, args.repeats)
                        if name not in best or r["seconds"] < best[name]["seconds"]:
                            best[name] = r
                old, new = best[revision], best["working tree"]
                same = abs(old["force_norm"] - new["force_norm"]) <= 1e-10 * old["force_norm"]
                rows.append(f"| {model} | {new['atoms']:,} | {old['seconds']:.2f} | {new['seconds']:.2f} | "
                            f"{old['seconds'] / new['seconds']:.2f}x | {new['seconds'] / new['atoms'] * 1e6:.0f} | "
                            f"{old['peak_MB']:.0f} | {new['peak_MB']:.0f} | {same} |")
                print(rows[-1], flush=True)
    table = "\n".join([f"| model | atoms | {revision} s | working tree s | speed-up | µs/atom now | {revision} peak MB | "
                       "peak MB now | same forces |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |", *rows])
    print(table)
    if not args.no_write:
        append_results(f"ML environment per QM/ML step, working tree against {revision}",
                       f"python benchmarks/environment_step.py --base {args.base} --sizes "
                       f"{' '.join(map(str, args.sizes))} --rounds {args.rounds}",
                       "energy + charges, then forces and strain derivative with the charge response; fresh process "
                       "per entry.", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
