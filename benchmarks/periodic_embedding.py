"""Periodic embedding: qmml's Ewald embedding against pyscf.qmmm.pbc, time and memory.

HF/6-31G* water in a cubic box of TIP3P-charged waters (random orientations on a jittered grid at
1 g/cm^3); energy + QM forces + forces on every charge.  Both codes: exact inside 9 Å of the QM centre
(hard cut), Ewald beyond.  Each case runs in a fresh process so its peak memory is its own.

    python benchmarks/periodic_embedding.py            # appends to benchmarks/RESULTS.md
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

WATER = np.array([[0.0, 0.0, 0.1174], [-0.757, 0.0, -0.4696], [0.757, 0.0, -0.4696]])
TIP3P = np.array([-0.834, 0.417, 0.417])
NEAR_A = 9.0


def box_of_waters(box_A: float, seed: int = 0):
    """Charge positions (Å) and charges of TIP3P waters filling a cubic box around a central QM water."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    n_side = int(round(box_A / 3.104))  # 3.104 Å spacing: 1 g/cm^3
    spacing = box_A / n_side
    grid = (np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * spacing
    grid -= box_A / 2
    grid = grid[np.linalg.norm(grid, axis=1) > 2.5]  # room for the QM water at the origin
    local = WATER - WATER[0]
    xyz = np.concatenate([c + rng.normal(0, 0.1, 3) + local @ Rotation.random(random_state=rng.integers(1e9)).as_matrix().T
                          for c in grid])
    return xyz, np.tile(TIP3P, len(grid))


def run_case(code: str, box_A: float) -> dict:
    sites, charges = box_of_waters(box_A)
    cell = np.eye(3) * box_A
    import qmml  # noqa: F401  (imports are not timed)
    from pyscf.qmmm.pbc import itrf  # noqa: F401

    start = time.perf_counter()
    if code == "qmml":
        engine = qmml.PySCFEngine("hf", "6-31g*", conv_tol=1e-10, near_field_A=NEAR_A, near_field_width_A=0.0)
        result = engine.compute(["O", "H", "H"], WATER, site_positions=sites, site_charges=charges, cell=cell)
        energy = result.energy / 27.211386245988
    else:
        from pyscf import gto, scf

        mol = gto.M(atom=[("O", WATER[0]), ("H", WATER[1]), ("H", WATER[2])], basis="6-31g*", verbose=0)
        mf = itrf.add_mm_charges(scf.RHF(mol), sites, cell, charges, rcut_ewald=min(8.0, 0.45 * box_A),
                                 rcut_hcore=NEAR_A)
        mf.conv_tol = 1e-10
        energy = mf.kernel()
        grad = mf.nuc_grad_method()
        grad.kernel()
        grad.grad_nuc_mm() + grad.grad_hcore_mm(mf.make_rdm1()) + grad.de_ewald_mm
    return {"seconds": time.perf_counter() - start, "energy": float(energy), "charges": len(charges),
            "peak_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--case":
        print(json.dumps(run_case(sys.argv[2], float(sys.argv[3]))))
        return
    rows = []
    for box in (15.0, 25.0, 40.0, 60.0):
        out = {}
        for code in ("qmml", "pyscf"):
            proc = subprocess.run([sys.executable, __file__, "--case", code, str(box)], capture_output=True, text=True)
            out[code] = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else \
                {"seconds": float("nan"), "energy": float("nan"), "peak_MB": float("nan"),
                 "charges": 0, "error": proc.stderr.strip().splitlines()[-1][:120]}
        rows.append((box, out))
        print(box, json.dumps(out))
    lines = [f"\n## Periodic embedding vs pyscf.qmmm.pbc ({date.today()}, {platform.machine()}, "
             f"Python {platform.python_version()})\n",
             "HF/6-31G* water in a cubic box of TIP3P waters, exact inside 9 Å (hard cut), Ewald beyond; energy + QM "
             "forces + forces on all charges, each case in its own process. `python benchmarks/periodic_embedding.py`\n",
             "| box (Å) | charges | qmml (s) | pyscf.qmmm.pbc (s) | pyscf / qmml | qmml peak (MB) | pyscf peak (MB) "
             "| abs(dE) (Eh) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for box, out in rows:
        q, p = out["qmml"], out["pyscf"]
        lines.append(f"| {box:.0f} | {q['charges']} | {q['seconds']:.2f} | {p['seconds']:.2f} | "
                     f"{p['seconds'] / q['seconds']:.2f} | {q['peak_MB']:.0f} | {p['peak_MB']:.0f} | "
                     f"{abs(q['energy'] - p['energy']):.1e} |" + (f" pyscf: {p['error']}" if "error" in p else ""))
    text = "\n".join(lines) + "\n"
    print(text)
    with open(Path(__file__).with_name("RESULTS.md"), "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
