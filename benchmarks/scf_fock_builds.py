"""Fock builds per MD step and force accuracy with and without PySCF's extra post-convergence cycle.

    python benchmarks/scf_fock_builds.py               # ~15 min on 2 cores; appends to RESULTS.md
    python benchmarks/scf_fock_builds.py --steps 10 --no-write

PySCF's ``conv_check`` ends every SCF with one more diagonalization of the last Fock matrix and one more Fock
build that only re-tests convergence; `PySCFEngine` keeps the diagonalization (`engine._final_orbitals`) and drops
the build.  Three ways, all at the same ``conv_tol``:

* "PySCF": ``conv_check=True`` (``PySCFEngine(..., conv_check=True)``);
* "qmml": the default;
* "neither": ``conv_check=False`` with the last DIIS step's orbitals (a no-op ``callback`` keeps the engine's out).

System: the README main job's Cl- + CH3Cl (B3LYP/6-31G*) in 41 ML waters (`benchmarks/md_integrators.py`'s sn2),
velocity Verlet 0.5 fs, 300 K start, seed 1.  Forces of the first geometry are compared with an SCF converged to
1e-13 Eh; the MD part counts SCF cycles and Fock builds per step after the first 6 steps.
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

WAYS = {"PySCF": {"conv_check": True}, "qmml": {}, "neither": {"conv_check": False, "callback": lambda envs: None}}


def hamiltonian(conv_tol, options):
    import qmml
    from md_integrators import sn2_system

    system, qm, charge, _ = sn2_system()
    part = qmml.partition(system, qm, charge=charge, boundary="none")
    engine = qmml.PySCFEngine("b3lyp", "6-31g*", conv_tol=conv_tol, grid_response=False, **options)
    return system, qmml.Hamiltonian(part, engine, qmml.load_model("water"))


def force_errors(conv_tols):
    system, reference = hamiltonian(1e-13, {})
    exact = reference.compute(system.positions).forces
    rows = []
    for tol in conv_tols:
        for way, options in WAYS.items():
            _, ham = hamiltonian(tol, options)
            error = np.abs(ham.compute(system.positions).forces - exact).max()
            rows.append(f"| {tol:g} | {way} | {error:.1e} |")
            print(rows[-1], flush=True)
    return rows


def md(way, steps):
    import qmml

    _, ham = hamiltonian(1e-11, WAYS[way])
    sim = qmml.Simulation(ham, qmml.VelocityVerlet(0.5), temperature_K=300, seed=1, progress=False)
    cycles, start = [], time.perf_counter()
    for _ in range(steps):
        sim.run(1)
        cycles.append(sim.state.result.scf_cycles)
    wall = (time.perf_counter() - start) / steps
    n = float(np.mean(cycles[6:]))
    builds = n + 1 + (way == "PySCF")  # the initial guess's, one per cycle, PySCF's extra one
    return f"| {way} | {n:.2f} | {builds:.2f} | {wall:.2f} |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    accuracy = ["| conv_tol (Eh) | way | max force error (eV/Å) |", "| --- | --- | --- |"] + force_errors([1e-9, 1e-11])
    steps = ["| way | SCF cycles per step | Fock builds per step | wall s per step |", "| --- | --- | --- | --- |"]
    for way in ("PySCF", "qmml"):
        steps.append(md(way, args.steps))
        print(steps[-1], flush=True)
    if not args.no_write:
        append_results("SCF: PySCF's extra post-convergence cycle", "python benchmarks/scf_fock_builds.py",
                       __doc__.split("\n\n", 2)[2].replace("\n", " "), "\n".join(accuracy) + "\n\n" + "\n".join(steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
