"""SCF cycles per step with the polynomial ("extrapolate") and geometry-fitted ("fit") density guesses, at
the 0.5 fs step of velocity Verlet and at the 2 fs outer step of r-RESPA.

    python benchmarks/scf_guess_outer_step.py              # ~5 min on 2 cores; appends to RESULTS.md
    python benchmarks/scf_guess_outer_step.py --steps 20 --no-write

System: the README main job's Cl- + CH3Cl (HF/6-31G*, density fitting, conv_tol 1e-10 Eh) in 41 ML waters
(`benchmarks/md_integrators.py`'s sn2), 300 K start, seed 1; r-RESPA with the `organic` model as the inner
`MLReference`, as in that benchmark.  Every run starts from the same state; the first 6 steps (the history
filling) are left out of the mean.  The guess changes the cycle count, never the converged result.
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


def cycles(integrator_name: str, guess: str, steps: int):
    import qmml
    from md_integrators import sn2_system

    system, qm, charge, density_fit = sn2_system()
    part = qmml.partition(system, qm, charge=charge, boundary="none")
    engine = qmml.PySCFEngine("hf", "6-31g*", conv_tol=1e-10, density_fit=density_fit, guess=guess)
    ham = qmml.Hamiltonian(part, engine, qmml.load_model("water"))
    integrator = qmml.MultipleTimeStep(2.0, 4, qmml.MLReference(ham, qmml.load_model("organic"))) \
        if integrator_name == "r-RESPA 2/0.5 fs" else qmml.VelocityVerlet(0.5)
    sim = qmml.Simulation(ham, integrator, temperature_K=300, seed=1, progress=False)
    counts, start = [], time.perf_counter()
    for _ in range(steps):
        sim.run(1)
        counts.append(sim.state.result.scf_cycles)
    return float(np.mean(counts[6:])), (time.perf_counter() - start) / steps


def main(argv=None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    rows = ["| integrator | guess | SCF cycles per step | wall s per step |", "| --- | --- | --- | --- |"]
    for integrator_name in ("velocity Verlet 0.5 fs", "r-RESPA 2/0.5 fs"):
        for guess in ("extrapolate", "fit"):
            n, wall = cycles(integrator_name, guess, args.steps)
            rows.append(f"| {integrator_name} | {guess} | {n:.2f} | {wall:.2f} |")
            print(rows[-1], flush=True)
    table = "\n".join(rows)
    if not args.no_write:
        append_results("SCF guess of the outer step: polynomial against geometry-fitted weights",
                       "python benchmarks/scf_guess_outer_step.py",
                       f"torch 2 threads; {args.steps} steps per run, the first 6 left out.", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
