"""Regenerate the periodic water box: 128 waters in a 15.64 Å cube (1.00 g/cm^3).

    python data/scripts/make_water_box.py

The shipped water test set's periodic frame (16 GFN2-xTB-sampled waters in a 7.82 Å cube,
data/datasets/water_test.npz) repeated twice along each lattice vector.  Writes
data/structures/water_box.{psf,pdb} (CRYST1 box, TIP3P topology charges, one residue per water).
Deterministic; a second.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_structures import OUT, water_bonds, write_pdb, write_psf  # noqa: E402

from qmml.ml import Dataset  # noqa: E402

DATASET = Path(__file__).resolve().parents[1] / "datasets" / "water_test.npz"


def main():
    frame = next(f for f in Dataset.load(DATASET) if f.cell is not None)
    cell = np.asarray(frame.cell)
    images = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)]) @ cell
    positions = np.concatenate([np.asarray(frame.positions) + s for s in images])
    atoms = []
    for k in range(len(positions) // 3):
        for name, element, charge, d in (("OH2", "O", -0.834, 0), ("H1", "H", 0.417, 1), ("H2", "H", 0.417, 2)):
            atoms.append(dict(name=name, element=element, charge=charge, pos=positions[3 * k + d], resname="TIP3",
                              resid=k + 1, segid="WAT"))
    bonds = water_bonds(0, len(atoms) // 3)
    box = 2 * np.diag(cell)
    write_psf(OUT / "water_box.psf", atoms, bonds)
    pdb = OUT / "water_box.pdb"
    write_pdb(pdb, atoms, bonds)
    lines = pdb.read_text().splitlines()
    cryst = f"CRYST1{box[0]:9.3f}{box[1]:9.3f}{box[2]:9.3f}{90.0:7.2f}{90.0:7.2f}{90.0:7.2f} P 1           1"
    pdb.write_text("\n".join([lines[0], cryst] + lines[1:]) + "\n")
    print(f"wrote {pdb} and water_box.psf: {len(atoms) // 3} waters, box {box.round(3).tolist()} Å")


if __name__ == "__main__":
    main()
