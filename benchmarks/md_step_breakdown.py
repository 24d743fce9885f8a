"""Where the wall time of one QM/ML MD step goes: SCF, QM gradient, embedding operator and response, the ML
environment (energy and charges, then forces with the charge response), van der Waals, and what the integrator,
step guard and bookkeeping add around the potential.

    python benchmarks/md_step_breakdown.py                       # both systems, appends to RESULTS.md
    python benchmarks/md_step_breakdown.py --only main --steps 5 --no-write

Systems:

* ``main``: the README main job (data/examples/sn2_in_water.yaml: HF/6-31G* with density fitting, Cl- + CH3Cl
  in 41 ML waters, Langevin 0.5 fs).
* ``waters``: one HF/6-31G* water at the centre of an open cube of about 1e4 ML waters (a 9 x 9 x 9 tiling of
  the 16-molecule liquid box of ``data/datasets/water_test.npz``), far field beyond 15 Å, Langevin 0.5 fs.

The parts come from ``result.details["timings_s"]`` (`qmml.Hamiltonian`); the neighbour-search share is
measured apart (searches counted on the environment's `VerletList` during the timed steps, times one search of
each of the model's lists at the same positions), as it lies inside the environment parts.  Thread count: ``OMP_NUM_THREADS`` (torch and PySCF alike).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

PARTS = ("environment", "qm_embedding_operator", "qm_scf", "qm_gradient", "qm_embedding_response",
         "environment_response", "vdw")


def main_job():
    from qmml.config import load_config
    from qmml.jobs import build_integrator, build_potential

    config, _ = load_config(ROOT / "data" / "examples" / "sn2_in_water.yaml")
    potential = build_potential(config)
    return potential, build_integrator(config, potential), "README main job (SN2 in 41 ML waters, HF/6-31G* DF)"


def many_waters(k: int = 9):
    import qmml
    from ml_environment_scaling import water_box

    z, x, groups, _ = water_box(k)
    x = x - x.mean(axis=0)
    centre = int(np.argmin(np.linalg.norm(x[::3], axis=1)))
    order = np.r_[3 * centre:3 * centre + 3, np.setdiff1d(np.arange(len(z)), np.arange(3 * centre, 3 * centre + 3))]
    z, x = z[order], x[order]
    symbols = ["H" if e == 1 else "O" for e in z]
    bonds = [(3 * m, 3 * m + h) for m in range(len(z) // 3) for h in (1, 2)]
    system = qmml.System.from_arrays(symbols, x, residues=np.repeat(np.arange(1, len(z) // 3 + 1), 3), bonds=bonds)
    part = qmml.partition(system, [0, 1, 2], charge=0)
    engine = qmml.PySCFEngine("hf", "6-31g*", density_fit=True, far_field_A=15.0)
    ham = qmml.Hamiltonian(part, engine, qmml.load_model("water"))
    return ham, qmml.Langevin(0.5, 300.0, seed=1), f"1 HF/6-31G* water in {len(z) // 3} ML waters, far field 15 Å"


def timed(potential):
    """``potential`` wrapped so that each call's wall time and timing details are kept (``.calls``)."""
    from qmml.potential import PotentialWrapper

    class Timed(PotentialWrapper):
        def __init__(self, inner):
            super().__init__(inner)
            self.calls = []

        def compute(self, positions, *, forces=True, cell=None):
            start = time.perf_counter()
            result = self.potential.compute(positions, forces=forces, cell=cell)
            self.calls.append((time.perf_counter() - start, dict(result.details.get("timings_s", {}))))
            return result

    return Timed(potential)


def measure(name: str, steps: int) -> dict:
    from qmml.md import Simulation
    from qmml.periodic.neighbours import pairs

    potential, integrator, label = main_job() if name == "main" else many_waters()
    wrapped = timed(potential)
    sim = Simulation(wrapped, integrator, temperature_K=300.0, seed=1, progress=False)
    sim.run(2)  # warm-up: guesses, caches
    wrapped.calls.clear()
    builds_before = potential.environment.neighbours.builds
    walls = []
    for _ in range(steps):
        start = time.perf_counter()
        sim.run(1)
        walls.append(time.perf_counter() - start)
    parts = {key: float(np.mean([details.get(key, 0.0) for _, details in wrapped.calls])) for key in PARTS}
    compute = float(np.mean([wall for wall, _ in wrapped.calls]))
    step = float(np.mean(walls))
    env = potential.partition.env_atoms
    model = potential.environment_model
    searches = (potential.environment.neighbours.builds - builds_before) / steps
    start = time.perf_counter()
    for _ in range(3):  # one fresh search of every list the model keeps (descriptors, Coulomb term)
        for cutoff in filter(None, (model.cutoff, model.coulomb_cutoff)):
            pairs(sim.state.positions[env], cutoff + potential.environment.neighbours.skin, potential.system.cell)
    parts[f"neighbour searches ({searches:.2f} per step, Verlet skin; inside environment, measured apart)"] = \
        searches * (time.perf_counter() - start) / 3
    parts["potential, other (boundary, bookkeeping)"] = compute - sum(parts[k] for k in PARTS)
    parts["integrator, step guard, reporters"] = step - compute
    return {"label": label, "step_s": step, "parts": parts, "scf_cycles": float(sim.state.result.scf_cycles),
            "atoms": potential.system.n_atoms}


def table(result: dict) -> str:
    step = result["step_s"]
    rows = [f"**{result['label']}** ({result['atoms']} atoms): {step:.3f} s per step", "",
            "| part | s per step | share |", "| --- | --- | --- |"]
    for key, value in result["parts"].items():
        rows.append(f"| {key} | {value:.4f} | {value / step:.1%} |")
    ml = result["parts"]["environment"] + result["parts"]["environment_response"]
    rows += ["", f"ML share (environment + environment_response): {ml / step:.1%}", ""]
    return "\n".join(rows)


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["main", "waters"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    names = [args.only] if args.only else ["main", "waters"]
    blocks = []
    for name in names:
        result = measure(name, args.steps)
        blocks.append(table(result))
        print(blocks[-1], flush=True)
    if not args.no_write:
        threads = os.environ.get("OMP_NUM_THREADS", "all")
        header = (f"\n## QM/ML MD step breakdown ({datetime.date.today()})\n\n`python benchmarks/md_step_breakdown.py "
                  f"--steps {args.steps}`; {platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS={threads}; "
                  "mean over the steps after two warm-up steps.\n\n")
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as handle:
            handle.write(header + "\n".join(blocks))
    return 0


if __name__ == "__main__":
    sys.exit(run())
