"""Condensed-phase labelling campaigns: periodic liquid boxes labelled with GFN2-xTB, chunk by chunk.

    python data/scripts/condensed_phase.py water                 # runs or continues the campaign
    python data/scripts/condensed_phase.py water --status        # what is done, what is left
    python data/scripts/condensed_phase.py water --max-minutes 60 --threads 1

A campaign is a fixed plan of short trajectories (size, density, temperature, seed).  For each one,
in plan order:

1. *seed*: Langevin dynamics of the box at constant volume with the current shipped environment model
   (its first committee member; deuterium masses and 1 fs, which samples the same configurations), one frame every
   ``every`` steps after a burn-in, written to ``data/campaigns/NAME/seeds/traj_NNN.npz``;
2. *label*: every seed frame labelled by periodic GFN2-xTB (energy, forces, stress, Mulliken
   charges), written to ``data/campaigns/NAME/labels/chunk_NNN.npz``.

Each file is written to a temporary name and renamed, so an interrupted campaign loses at most the
chunk in progress; running the same command again resumes at the first chunk without a file.
Frames in which a molecule broke (bonds from covalent radii) end their trajectory and are not kept.
The labels are raw GFN2-xTB (dispersion included); `qmml.ml` subtracts the explicit dispersion when
a training set is assembled.  Costs (2 cores): ~6 s per 32-water frame, ~13 s per 64-water frame.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_datasets import place_waters, langevin_frames  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CAMPAIGNS = ROOT / "data" / "campaigns"
WATER_G_PER_CM3_PER_MOLECULE_PER_A3 = 18.015 / 0.6022140857  # g/cm^3 of one water per Å^3


@dataclass(frozen=True)
class Trajectory:
    """One seed trajectory of the plan."""

    index: int
    n_waters: int
    density_g_cm3: float
    temperature_K: float
    seed: int
    frames: int
    every: int = 40
    burn_in: int = 1000


def water_plan() -> list[Trajectory]:
    """Liquid water: 32-water boxes over 0.85-1.10 g/cm^3 and 280-400 K, and a few 64-water boxes."""
    plan = []
    for density in (0.85, 0.92, 0.97, 1.00, 1.03, 1.10):
        for temperature in (280.0, 300.0, 330.0, 360.0, 400.0):
            plan.append((32, density, temperature, 20))
    for density in (0.95, 1.00, 1.05):
        for temperature in (300.0, 350.0):
            plan.append((64, density, temperature, 10))
    return [Trajectory(k, n, d, t, 1000 + k, f) for k, (n, d, t, f) in enumerate(plan)]


PLANS = {"water": water_plan}


def water_box(trajectory: Trajectory):
    """Random non-overlapping waters in the cubic box of the trajectory's density."""
    n = trajectory.n_waters
    length = (n * WATER_G_PER_CM3_PER_MOLECULE_PER_A3 / trajectory.density_g_cm3) ** (1 / 3)
    rng = np.random.default_rng(trajectory.seed)
    x = place_waters(rng, n, cell=length, min_dist=2.5)
    elements = np.array([8, 1, 1] * n)
    molecule = np.repeat(np.arange(n), 3)
    return elements, x, np.eye(3) * length, molecule, np.zeros(n)


class ModelForces:
    """The shipped model as a force engine for `langevin_frames` (returns a `qmml.ml.Label`)."""

    def __init__(self, model, elements, cell, molecule):
        self.model, self.elements, self.cell, self.molecule = model, elements, cell, molecule

    def __call__(self, positions):
        from qmml.ml.labelling import Label

        p = self.model.predict(self.elements, positions, cell=self.cell, groups=self.molecule)
        return Label(p.energy, p.forces, p.charges)


def whole(elements, positions, cell, molecule) -> bool:
    from qmml.ml.labelling import molecules_from_distances

    found = molecules_from_distances(elements, positions, cell)
    return len(np.unique(found)) == len(np.unique(molecule)) and \
        all(len(np.unique(found[molecule == m])) == 1 for m in np.unique(molecule))


def save_atomically(dataset, path: Path) -> None:
    tmp = path.with_name(path.stem + ".partial.npz")
    tmp.unlink(missing_ok=True)
    dataset.save(tmp)
    os.replace(tmp, path)


def seed(trajectory: Trajectory, path: Path, model_name: str):
    import qmml
    from qmml.ml import Dataset, Frame

    elements, x, cell, molecule, molecule_charges = water_box(trajectory)
    model = qmml.load_model(model_name).select_members([0])  # one member: a third of the cost, same physics
    forces = ModelForces(model, elements, cell, molecule)
    rng = np.random.default_rng(trajectory.seed)
    steps = trajectory.burn_in + trajectory.frames * trajectory.every
    data = Dataset(metadata={"reference": f"seed frames: shipped '{model_name}' model (member 0), Langevin NVT",
                             "trajectory": asdict(trajectory)})
    for positions, label in langevin_frames(forces, elements, x, temperature_K=trajectory.temperature_K,
                                            steps=steps, every=trajectory.every, burn_in=trajectory.burn_in,
                                            rng=rng):
        if not whole(elements, positions, cell, molecule):
            print(f"  trajectory {trajectory.index}: a molecule broke after {len(data)} frames; kept those",
                  flush=True)
            break
        data.append(Frame(elements, positions, label.energy, label.forces, label.charges, molecule,
                          molecule_charges, cell))
    save_atomically(data, path)
    return data


def label(seeds, trajectory: Trajectory, path: Path):
    from qmml.errors import QmmlError
    from qmml.ml import Dataset, Frame
    from qmml.ml.labelling import XTBLabeller

    data = Dataset(metadata={"reference": "GFN2-xTB (tblite), Mulliken charges", "trajectory": asdict(trajectory)})
    labeller = None
    for k, f in enumerate(seeds.frames):
        if labeller is None:
            labeller = XTBLabeller(f.elements, charge=int(round(np.sum(f.molecule_charges))), cell=f.cell)
        try:
            lab = labeller(f.positions)
        except QmmlError as err:
            print(f"  chunk {trajectory.index} frame {k}: {err}; frame skipped", flush=True)
            labeller = None
            continue
        data.append(Frame(f.elements, f.positions, lab.energy, lab.forces, lab.charges, f.molecule,
                          f.molecule_charges, f.cell, lab.stress))
    save_atomically(data, path)
    return data


def status(name: str, plan: list[Trajectory]) -> tuple[int, int]:
    folder = CAMPAIGNS / name
    done = [t for t in plan if (folder / "labels" / f"chunk_{t.index:03d}.npz").exists()]
    frames = sum(t.frames for t in done)
    return len(done), frames


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("campaign", choices=sorted(PLANS))
    parser.add_argument("--model", default="water", help="shipped model that drives the seed dynamics")
    parser.add_argument("--threads", type=int, default=None, help="threads for tblite and torch")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after the chunk that passes this")
    parser.add_argument("--status", action="store_true", help="print progress and exit")
    args = parser.parse_args(argv)
    plan = PLANS[args.campaign]()
    folder = CAMPAIGNS / args.campaign
    (folder / "seeds").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    plan_file = folder / "plan.json"
    text = json.dumps([asdict(t) for t in plan], indent=1)
    if plan_file.exists() and plan_file.read_text() != text:
        sys.exit(f"{plan_file} differs from this script's plan; a changed plan needs a new campaign name")
    plan_file.write_text(text)
    n_done, n_frames = status(args.campaign, plan)
    print(f"campaign {args.campaign}: {n_done}/{len(plan)} chunks labelled (up to {n_frames} frames)", flush=True)
    if args.status:
        return
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        import torch

        torch.set_num_threads(args.threads)
    from qmml.ml import Dataset

    start = time.time()
    for t in plan:
        chunk = folder / "labels" / f"chunk_{t.index:03d}.npz"
        if chunk.exists():
            continue
        t0 = time.time()
        seed_file = folder / "seeds" / f"traj_{t.index:03d}.npz"
        seeds = Dataset.load(seed_file) if seed_file.exists() else seed(t, seed_file, args.model)
        t1 = time.time()
        data = label(seeds, t, chunk)
        print(f"chunk {t.index:03d}: {t.n_waters} waters, {t.density_g_cm3} g/cm^3, {t.temperature_K:.0f} K: "
              f"{len(data)} frames (seed {t1 - t0:.0f} s, label {time.time() - t1:.0f} s)", flush=True)
        if args.max_minutes is not None and (time.time() - start) / 60 > args.max_minutes:
            print("time limit reached; run the same command to continue", flush=True)
            break
    n_done, n_frames = status(args.campaign, plan)
    print(f"campaign {args.campaign}: {n_done}/{len(plan)} chunks labelled", flush=True)


if __name__ == "__main__":
    main()
