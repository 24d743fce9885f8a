"""Energy of one pair of ions pulled together in the liquid: environment models against their teacher.

    python data/scripts/ion_pair_scan.py                      # Na 0 towards Cl 7, the frame where al3 fused
    python data/scripts/ion_pair_scan.py --models data/models/organic_condensed_al5.pt data/models/organic_condensed_al6.pt
    python data/scripts/ion_pair_scan.py --atoms 0 3          # Na 0 towards Na 3

Issue 17, point 5: Na+ and Cl- fused at 1.4-1.5 Å in 10 ps NaCl(aq) runs of ``organic_condensed_al3``.  This
takes one frame of a ``solution_stability.py`` run (its ``checkpoint.npz``; by default the last frame of al3's
seed-5 run, which stopped at 2.27 ps with Na 0 and Cl 7 at 1.88 Å), moves the first atom along the axis to the
second (minimum image) to each distance, everything else fixed, and prints the energy relative to the last
distance for GFN2-xTB (periodic, tblite) and for each model (committee mean) as a Markdown table.

GFN2-xTB costs about 80 s per point for the 368-atom ``nacl_water`` on one core; its energies are kept in
``--cache`` (JSON, keyed by frame, atoms and distance) so that a second call only evaluates the models.
Units: Å, eV.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
STRUCTURES = ROOT / "data" / "structures"
DEFAULT_FRAME = ROOT / "data/validation/solution_stability/nacl_water_organic_condensed_al3_seed5/checkpoint.npz"
DEFAULT_MODELS = ["data/models/organic_condensed_al3.pt", "data/models/organic_condensed_al4.pt",
                  "data/models/organic_condensed_al5.pt"]
DISTANCES_A = [1.4, 1.6, 1.8, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0, 3.2]


def frame_positions(path: Path, n_atoms: int) -> np.ndarray:
    """Positions (Å) of a `qmml.Simulation` checkpoint of a run of ``n_atoms`` atoms (`InputError` otherwise)."""
    from qmml.errors import InputError
    from qmml.md.checkpoint import read_checkpoint

    positions = np.asarray(read_checkpoint(path)[0].positions)
    if positions.shape != (n_atoms, 3):
        raise InputError(f"{path}: positions of {len(positions)} atoms, the structure has {n_atoms}; give the "
                         "checkpoint.npz of a run of this structure")
    return positions


def scan_positions(positions, cell, i: int, j: int, distances):
    """Copies of ``positions`` with atom i on the axis from atom j (minimum image) at each distance (Å)."""
    from qmml.periodic.cell import minimum_image

    axis = minimum_image(positions[i] - positions[j], cell)
    axis = axis / np.linalg.norm(axis)
    out = []
    for r in distances:
        x = positions.copy()
        x[i] = positions[j] + r * axis
        out.append(x)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structure", default="nacl_water", help="a structure of data/structures (PSF + PDB)")
    parser.add_argument("--frame", type=Path, default=DEFAULT_FRAME, help="checkpoint.npz of a run of it")
    parser.add_argument("--atoms", type=int, nargs=2, default=(0, 7), metavar=("MOVED", "FIXED"),
                        help="system-wide indices: the atom moved, and the one it moves towards")
    parser.add_argument("--distances", type=float, nargs="+", default=DISTANCES_A, help="Å; the last is the zero")
    parser.add_argument("--models", nargs="*", default=DEFAULT_MODELS, help="model files or shipped names")
    parser.add_argument("--cache", type=Path, default=ROOT / "data/validation/ion_pair_scan_gfn2.json",
                        help="GFN2-xTB energies already computed (read and extended)")
    parser.add_argument("--no-teacher", action="store_true", help="models only")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import qmml
    import torch

    torch.set_num_threads(args.threads)
    system = qmml.load_system(str(STRUCTURES / f"{args.structure}.psf"), str(STRUCTURES / f"{args.structure}.pdb"))
    n = len(system.atomic_numbers)
    i, j = args.atoms
    if not (0 <= i < n and 0 <= j < n and i != j):
        print(f"error: --atoms {i} {j}: two different atoms of 0-{n - 1} in {args.structure}", file=sys.stderr)
        return 2
    try:
        x0 = frame_positions(args.frame, n)
    except qmml.InputError as err:
        print(f"error: --frame: {err}", file=sys.stderr)
        return 2
    frames = scan_positions(x0, system.cell, i, j, args.distances)
    rows = {}
    if not args.no_teacher:
        from qmml.ml.labelling import XTBLabeller

        cache = json.loads(args.cache.read_text()) if args.cache.exists() else {}
        frame_key = os.path.relpath(args.frame.resolve(), ROOT)
        labeller = None
        energies = []
        for r, x in zip(args.distances, frames):
            key = f"{args.structure}|{frame_key}|{i}-{j}|{r:.3f}"
            if key not in cache:
                if labeller is None:
                    labeller = XTBLabeller(system.atomic_numbers, charge=0, cell=system.cell)
                cache[key] = float(labeller(x).energy)
                args.cache.write_text(json.dumps(cache, indent=1, sort_keys=True))
                print(f"  GFN2-xTB at {r:.2f} Å: done", file=sys.stderr, flush=True)
            energies.append(cache[key])
        rows["GFN2-xTB (teacher)"] = np.array(energies)
    for name in args.models:
        potential = qmml.MLPotential(qmml.load_model(name), system, total_charge=0)
        rows[f"`{Path(name).stem}`"] = np.array([potential.compute(x, forces=False).energy for x in frames])
    a, b = system.atom_label(i), system.atom_label(j)
    print(f"Energy (eV) of {a} moved towards {b}, relative to {args.distances[-1]:.1f} Å "
          f"({args.structure}, frame {args.frame.name} of {args.frame.parent.name}):\n")
    print("| distance (Å) | " + " | ".join(f"{r:.1f}" for r in args.distances[:-1]) + " |")
    print("| --- | " + " | ".join("---" for _ in args.distances[:-1]) + " |")
    for label, e in rows.items():
        print(f"| {label} | " + " | ".join(f"{v:+.2f}" for v in (e - e[-1])[:-1]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
