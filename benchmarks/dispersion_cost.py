"""Cost of the explicit dispersion term: qmml's D3 term vs simple-dftd3, dftd4, torch-dftd, and the water model.

One call = energy + forces + virial (stress) of a periodic liquid-water box: the 128-water box
``data/structures/water_box.pdb`` (384 atoms, 15.65 Å) replicated 1, 2 x 2 x 2 (3,072 atoms) and
4 x 4 x 4 (24,576 atoms).  All with the damping of `qmml.ml.D3Dispersion` (GFN2-xTB's D4 parameters,
two-body only):

* ``D3Dispersion.compute`` (the term `EnvironmentModel` adds: D3 C6/C8 fixed per element pair, pairs
  from vesin, closed-form derivatives in NumPy, switched over 8-10 Å, homogeneous tail beyond);
* simple-dftd3 itself (coordination-dependent C6, N x N tables: quadratic time and memory);
* with ``--all``: dftd4's two-body term (EEQ charges) and torch-dftd's ``TorchDFTD3Calculator`` through
  ASE (hard cutoff, float64), on the two smaller boxes;
* the shipped water model's ``predict`` (energy, forces, charges, strain derivative; groups = molecules).

Best of ``--repeats`` calls after one warm-up call; run it with ``OMP_NUM_THREADS=1`` for one core.

    OMP_NUM_THREADS=1 python benchmarks/dispersion_cost.py      # appends to benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HEADING = "Dispersion term: qmml's fixed-C6 D3 sum vs simple-dftd3 vs dftd4 vs torch-dftd"


def boxes():
    import qmml

    s = qmml.load_system(ROOT / "data" / "structures" / "water_box.pdb")
    z, x, cell = s.atomic_numbers, s.positions, s.cell
    groups = s.residue_index
    small = (z, x, cell, groups)
    out = {"384": small}
    for k in (2, 4):
        shifts = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3) @ cell
        n = k ** 3
        out[f"{384 * n:,}"] = (np.tile(z, n), (x[None] + shifts[:, None]).reshape(-1, 3), k * cell,
                               (groups[None] + np.arange(n)[:, None] * (groups.max() + 1)).reshape(-1))
    return out


def best_time(call, repeats: int, single_above_s: float = 20.0):
    """Best of ``repeats`` calls after a warm-up; a warm-up slower than ``single_above_s`` is the
    measurement itself (dftd4 takes minutes for 3,072 atoms; warm-up effects are negligible there)."""
    t0 = time.perf_counter()
    result = call()  # warm-up (library loading, parameter tables)
    if time.perf_counter() - t0 > single_above_s:
        return time.perf_counter() - t0, result
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t0)
    return min(times), result


def term():
    from qmml.ml import D3Dispersion, Dataset

    frame = next(f for f in Dataset.load(ROOT / "data" / "datasets" / "water_test.npz") if f.cell is not None)
    return D3Dispersion.fitted([(frame.elements, frame.positions)])


def qmml_call(cutoff):
    disp = term().with_parameters(cutoff_A=cutoff)
    return lambda z, x, cell, g: disp.compute(z, x, cell)[0]


def dftd3_call(cutoff):
    from dftd3.interface import DispersionModel, RationalDampingParam

    from qmml import units

    d = term()
    b = units.ANGSTROM_BOHR

    def call(z, x, cell, g):
        model = DispersionModel(z, x * b, cell * b, np.ones(3, bool))
        model.set_realspace_cutoff(cutoff * b, cutoff * b, 10.0 * b, width2=d.switch_width_A * b)
        param = RationalDampingParam(s6=d.s6, s8=d.s8, s9=0.0, a1=d.a1, a2=d.a2)
        return float(model.get_dispersion(param, True)["energy"]) * units.HARTREE_EV
    return call


def dftd4_call(cutoff):
    from dftd4.interface import DampingParam, DispersionModel

    from qmml import units
    from qmml.ml import D3Dispersion

    d = D3Dispersion()
    b = units.ANGSTROM_BOHR

    def call(z, x, cell, g):
        model = DispersionModel(z, x * b, lattice=cell * b, periodic=np.ones(3, bool))
        # dftd4's own coordination-number cutoff (30 Bohr); the two-body cutoff as for dftd3
        model.set_realspace_cutoff(cutoff * b, cutoff * b, 30.0, d.switch_width_A * b)
        param = DampingParam(s6=d.s6, s8=d.s8, s9=0.0, a1=d.a1, a2=d.a2)
        return float(model.get_dispersion(param, grad=True)["energy"]) * units.HARTREE_EV
    return call


def torch_dftd_call(cutoff):
    import torch
    from ase import Atoms
    from ase.calculators.calculator import all_changes
    from torch_dftd.torch_dftd3_calculator import TorchDFTD3Calculator

    from qmml.ml import D3Dispersion

    d = D3Dispersion()

    def call(z, x, cell, g):
        atoms = Atoms(numbers=z, positions=x, cell=cell, pbc=True)
        calc = TorchDFTD3Calculator(atoms=atoms, damping="bj", cutoff=cutoff, cnthr=10.0, dtype=torch.float64)
        calc.dftd_module.params = dict(s6=d.s6, rs6=d.a1, s18=d.s8, rs18=d.a2, alp=14.0)
        calc.calculate(atoms, ["energy", "forces", "stress"], all_changes)
        return float(calc.results["energy"])
    return call


def model_call(dtype):
    import torch

    from qmml import load_model

    model = load_model("water", dtype=getattr(torch, dtype), device="cpu")
    return lambda z, x, cell, g: model.predict(z, x, cell=cell, groups=g).energy


def main(argv=None) -> None:
    import warnings

    import torch

    warnings.filterwarnings("ignore", message="Creating a tensor from a list of numpy.ndarrays")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-append", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--all", action="store_true", help="also dftd4 and torch-dftd (minutes at 3,072 atoms)")
    args = parser.parse_args(argv)
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or os.cpu_count()
    torch.set_num_threads(threads)

    parser_all = args.all
    cases = [("qmml D3Dispersion.compute (fixed C6, vesin + NumPy, tail)", 10.0, lambda: qmml_call(10.0), 3),
             ("simple-dftd3 (C6(CN), N x N tables)", 10.0, lambda: dftd3_call(10.0), 2)]
    if parser_all:
        cases.append(("dftd4, two-body", 15.0, lambda: dftd4_call(15.0), 2))
        try:
            import torch_dftd  # noqa: F401
            cases.append(("torch-dftd TorchDFTD3Calculator (ASE)", 10.0, lambda: torch_dftd_call(10.0), 2))
        except ImportError:
            print("torch-dftd is not installed: skipped")
    cases.append(("water model predict, float32", 5.0, lambda: model_call("float32"), 3))

    structures = boxes()
    rows = []
    for name, cutoff, make, n_boxes in cases:
        call = make()
        row = [name, f"{cutoff:g}"]
        energies = []
        for k, (z, x, cell, g) in enumerate(structures.values()):
            if k >= n_boxes:
                row.append("-")
                continue
            seconds, energy = best_time(lambda: call(z, x, cell, g), args.repeats)
            row.append(f"{seconds:.3f}")
            energies.append(energy)
        row.append(f"{energies[0]:.3f}")
        rows.append(row)
        print(" | ".join(row), flush=True)

    header = ["method", "cutoff (Å)", "384 atoms (s)", "3,072 atoms (s)", "24,576 atoms (s)", "E, 384 atoms (eV)"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    table = "\n".join(lines)
    print(table)
    if args.no_append:
        return
    import dftd3
    import dftd4

    versions = f"dftd3 {dftd3.__version__}, dftd4 {dftd4.__version__}, torch {torch.__version__}"
    try:
        import torch_dftd

        versions += f", torch-dftd {torch_dftd.__version__}"
    except ImportError:
        pass
    machine = ", ".join(part for part in (platform.machine(), platform.processor(), f"{os.cpu_count()} cores",
                                          f"{threads} thread(s)", f"Python {platform.python_version()}") if part)
    text = (f"\n## {HEADING} ({date.today().isoformat()}, {machine})\n\n"
            f"Energy + forces + virial of periodic liquid water (`data/structures/water_box.pdb`, and the same box "
            f"2 x 2 x 2 and 4 x 4 x 4), GFN2-xTB's D4 damping (s8 2.7, a1 0.52, a2 5.0 Bohr), two-body only; best of "
            f"{args.repeats} after a warm-up (one call where that took over 20 s). The water model row is its "
            f"whole `predict` (5 Å networks, energy, forces, charges, strain derivative) for scale. {versions}. "
            f"`OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python benchmarks/dispersion_cost.py`\n\n"
            f"{table}\n")
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
        fh.write(text)
    print(f"appended to {ROOT / 'benchmarks' / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
