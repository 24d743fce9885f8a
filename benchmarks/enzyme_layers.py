"""One QM/ML/MM step of the solvated enzyme (data/examples/enzyme_qm_ml_mm.yaml: chorismate mutase, 43,048
atoms; QM chorismate + Arg90 guanidinium, B3LYP/6-31G*; ML shell 6 Å, `organic`; amber14 MM with PME) broken
down by layer.

    OMP_NUM_THREADS=2 python benchmarks/enzyme_layers.py            # appends to RESULTS.md
    python benchmarks/enzyme_layers.py --no-write --method hf --basis sto-3g

The step is ``Hamiltonian.compute`` with forces, from the SCF of the previous step's density (a second call at
positions moved by 0.001 Å, as in MD).  Its parts come from ``result.details["timings_s"]``; the environment's
share is split into the ML shell (energy, charges, forces with the charge response) and the MM layer (OpenMM
energy and forces, and its stress by finite strain: 12 energies) by timing each layer's own evaluation at the
same positions.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", help="replace the example's QM method (e.g. hf)")
    parser.add_argument("--basis", help="replace the example's basis (e.g. sto-3g)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args(argv)

    from qmml import jobs
    from qmml.config import load_config

    overrides = [f"qm.{k}={v}" for k, v in (("method", args.method), ("basis", args.basis)) if v]
    config, _ = load_config(ROOT / "data" / "examples" / "enzyme_qm_ml_mm.yaml", overrides)
    clock = time.perf_counter()
    ham = jobs.build_potential(config)
    build_s = time.perf_counter() - clock
    part = ham.partition
    x = part.system.positions
    ham.compute(x)  # first step: SCF from the atomic guess, contexts and pair lists built
    moved = x + 1e-3
    clock = time.perf_counter()
    result = ham.compute(moved)
    step_s = time.perf_counter() - clock
    timings = result.details["timings_s"]

    env = ham.environment
    g = result.charge_gradient
    clock = time.perf_counter()
    ml = env.ml.evaluate(moved, part, ham.scheme, forces=True)
    ml.forces(g)
    if ml.strain_derivative is not None:
        ml.strain_derivative(g)
    ml_s = time.perf_counter() - clock
    clock = time.perf_counter()
    mm = env.mm.evaluate(moved, part, ham.scheme, forces=True)
    mm.forces(g)
    mm_forces_s = time.perf_counter() - clock
    context = env.mm.forcefield.context(part.qm_atoms, env.mm.inner_regions(part, ham.scheme),
                                        platform=env.mm.platform, threads=env.mm.threads)
    clock = time.perf_counter()
    context.strain_derivative(moved, part.system.cell)
    mm_stress_s = time.perf_counter() - clock
    qm_s = sum(v for k, v in timings.items() if k.startswith("qm_"))
    rows = [("QM (embedding operator, SCF, gradient, response)", qm_s),
            ("ML shell (energy, charges, forces with charge response)", ml_s),
            ("MM layer: OpenMM energy and forces", mm_forces_s),
            (f"MM layer: stress by finite strain (12 energies; {'in' if mm.strain_derivative else 'not in'} "
             "this step, `mm.stress`)", mm_stress_s),
            ("QM-MM van der Waals", timings["vdw"])]
    mm_share = (mm_forces_s + (mm_stress_s if mm.strain_derivative else 0.0)) / step_s
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    lines = [f"## Enzyme QM/ML/MM step by layer ({datetime.date.today()}, {platform.node()}, {os.cpu_count()} cores, "
             f"OMP_NUM_THREADS={threads})", "",
             f"`python benchmarks/enzyme_layers.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`: "
             f"{part.system.n_atoms} atoms; QM {len(part.qm_atoms)} atoms + {len(part.links)} links "
             f"({config.qm.method}/{config.qm.basis}, {result.scf_cycles} SCF cycles); ML shell "
             f"{len(part.shell_atoms)} atoms + {len(part.shell.caps)} caps; MM {len(part.mm_atoms)} atoms (PME). "
             f"Build {build_s:.1f} s.", "",
             "| part | s | share of the step |", "|---|---|---|"]
    lines += [f"| {name} | {seconds:.3f} | {100 * seconds / step_s:.1f} % |" for name, seconds in rows]
    lines += [f"| **whole step** (`Hamiltonian.compute` with forces) | **{step_s:.2f}** | 100 % |", "",
              f"MM layer: {100 * mm_share:.1f} % of the step (target < 10 %); with its stress "
              f"{100 * (mm_forces_s + mm_stress_s) / step_s:.1f} %.", ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()
