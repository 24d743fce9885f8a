"""The QM/ML MD step of the README main job, timed for two revisions side by side on one machine.

    python benchmarks/revisions_side_by_side.py --base HEAD~1               # this tree against the last commit
    python benchmarks/revisions_side_by_side.py --base HEAD~1 --steps 20 --rounds 3 --no-write

For refactors that must leave the hot path alone: the same job (data/examples/sn2_in_water.yaml, HF/6-31G*
with density fitting, Cl- + CH3Cl in 41 ML waters, Langevin 0.5 fs) runs ``--steps`` steps with each
revision, in fresh processes, alternating A B A B ... for ``--rounds`` rounds so that a machine's drift hits
both alike.  ``--base`` is checked out into a temporary git worktree; the current working tree is the other
side.  Reported per revision: the best and median seconds per MD step (after a warm-up of 2 steps), the
mean SCF cycles per step and the final potential energy (the two must agree: a refactor changes no
number).  Appends a table to benchmarks/RESULTS.md unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _revisions import append_results, run_child, short_revision, worktree  # noqa: E402

# run inside the revision's tree (PYTHONPATH) in a fresh process; prints one JSON line
CHILD = r"""
import json, sys, time
import numpy as np
from qmml.config import load_config
import qmml.jobs as jobs

job, steps = sys.argv[1], int(sys.argv[2])
config, root = load_config(job)
build = getattr(jobs, "build_potential", None)
if build is not None:
    potential = build(config)
    integrator = jobs.build_integrator(config, potential)
else:  # revisions before the one builder
    part = jobs.build_partition(config, root)
    potential = jobs.build_hamiltonian(config, root, part)
    integrator = jobs.build_integrator(config, root, potential)
from qmml.md import Simulation
sim = Simulation(potential, integrator, temperature_K=300.0, seed=1, progress=False)
sim.run(2)
times, cycles = [], []
for _ in range(steps):
    t0 = time.perf_counter()
    sim.run(1)
    times.append(time.perf_counter() - t0)
    cycles.append(sim.state.result.scf_cycles)
print(json.dumps({"times": times, "cycles": cycles, "energy": sim.state.potential_energy}))
"""


def run_once(tree: Path, steps: int) -> dict:
    return run_child(tree, CHILD, tree / "data" / "examples" / "sn2_in_water.yaml", steps)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare the working tree against")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    revision = short_revision(args.base)
    with worktree(revision) as base:
        runs = {"working tree": [], revision: []}
        for k in range(args.rounds):
            for name, tree in (("working tree", ROOT), (revision, base)):
                runs[name].append(run_once(tree, args.steps))
                print(f"round {k + 1}, {name}: median {np.median(runs[name][-1]['times']):.3f} s/step", flush=True)
    rows = []
    for name, results in runs.items():
        times = np.concatenate([r["times"] for r in results])
        cycles = np.concatenate([r["cycles"] for r in results])
        energies = {round(r["energy"], 8) for r in results}
        rows.append(f"| {name} | {times.min():.3f} | {np.median(times):.3f} | {cycles.mean():.2f} | "
                    f"{', '.join(f'{e:.8f}' for e in sorted(energies))} |")
    table = "\n".join(["| revision | best s/step | median s/step | SCF cycles/step | final energy (eV) |",
                       "| --- | --- | --- | --- | --- |", *rows])
    print(table)
    if not args.no_write:
        append_results(f"Main-job MD step, working tree against {revision}",
                       f"python benchmarks/revisions_side_by_side.py --base {args.base} --steps {args.steps} "
                       f"--rounds {args.rounds}", "alternating fresh processes.", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
