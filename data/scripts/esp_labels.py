"""ESP-fitted (RESP) charges of labelled cluster frames, chunk by chunk: the embedding-charge head's targets.

    python data/scripts/esp_labels.py water_esp                     # runs or continues the campaign
    python data/scripts/esp_labels.py water_esp --status
    python data/scripts/esp_labels.py water_esp --max-minutes 30 --threads 1

A campaign takes frames of a shipped dataset (GFN2-xTB energies, forces and Mulliken charges, kept as they are)
and adds to each the RESP charges of its HF/6-31G* density (`qmml.ml.PySCFLabeller`'s fit: potential on
Merz-Kollman shells at 1.4-2.0 x van der Waals radii, hyperbolic restraint a = 0.0005, b = 0.1, every molecule
keeping its integer charge), as `Frame.esp_charges`.  HF/6-31G* is the level of AMBER's RESP charges; its
overestimated gas-phase dipoles stand in for the polarization of the condensed phase.

Plans (`PLANS`): ``water_esp`` (60 8-water and 60 12-water clusters of `water_train.npz`) and
``water_esp_test`` (10 6-water and 10 20-water clusters of `water_test.npz`); ``organic_esp`` and
``organic_esp_test`` (solutes, ions and solvated clusters of 21-46 atoms of the organic sets).  Each chunk of 10 frames is written to
``data/campaigns/NAME/labels/chunk_NNN.npz`` under a temporary name and renamed when complete, so a stopped
campaign continues at the first missing chunk.  Cost (one core): ~5 s per 8-water frame, ~15 s per 12-water.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from condensed_phase import save_atomically  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CAMPAIGNS = ROOT / "data" / "campaigns"
METHOD, BASIS = "hf", "6-31g*"
ESP_REFERENCE = "RESP (a=0.0005, b=0.1) of the HF/6-31G* density (PySCF), Merz-Kollman shells 1.4-2.0 x vdW"
#: name -> (source dataset, {atoms per frame: frames}); frames are spread evenly over the source's frames of
#: that size (open clusters only)
PLANS = {
    "water_esp": ("data/datasets/water_train.npz", {24: 60, 36: 60}),
    "water_esp_test": ("data/datasets/water_test.npz", {18: 10, 60: 10}),
    # solutes, ions and their solvated clusters of the organic set (21-46 atoms)
    "organic_esp": ("data/datasets/organic_train.npz", {21: 20, 23: 20, 25: 20, 38: 10, 41: 20, 46: 10}),
    "organic_esp_test": ("data/datasets/organic_test.npz", {23: 6, 25: 8, 41: 6}),
}
CHUNK = 10


def plan_frames(name: str) -> list[int]:
    """Indices (into the source dataset) of the plan's frames, in chunk order."""
    from qmml.ml import Dataset

    source, sizes = PLANS[name]
    data = Dataset.load(ROOT / source)
    picks = []
    for n_atoms, count in sizes.items():
        candidates = [k for k, f in enumerate(data.frames) if f.cell is None and len(f.elements) == n_atoms]
        if len(candidates) < count:
            sys.exit(f"{source} has {len(candidates)} open frames of {n_atoms} atoms, the plan wants {count}")
        picks += [candidates[int(i)] for i in np.linspace(0, len(candidates) - 1, count).round()]
    return picks


def esp_charges(labeller, frame) -> np.ndarray:
    """RESP charges (e) of one open frame, each molecule keeping its charge."""
    from qmml.elements import SYMBOLS
    from qmml.ml.labelling import esp_grid, resp_charges

    grid = esp_grid(frame.elements, frame.positions)
    result = labeller.compute([SYMBOLS[int(z) - 1] for z in frame.elements], frame.positions,
                              charge=int(round(float(np.sum(frame.molecule_charges)))), forces=False,
                              probe_positions=grid)
    return resp_charges(frame.elements, frame.positions, grid, result.probe_potential, molecule=frame.molecule,
                        molecule_charges=frame.molecule_charges)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("campaign", choices=sorted(PLANS))
    parser.add_argument("--status", action="store_true", help="print progress and stop")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after the chunk that passes this")
    parser.add_argument("--threads", type=int, default=None, help="OpenMP threads of PySCF (default: all)")
    parser.add_argument("--campaigns-dir", default=str(CAMPAIGNS))
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    from qmml.ml import Dataset
    from qmml.qm import PySCFEngine

    folder = Path(args.campaigns_dir) / args.campaign
    labels = folder / "labels"
    picks = plan_frames(args.campaign)
    chunks = [picks[k:k + CHUNK] for k in range(0, len(picks), CHUNK)]
    done = [k for k in range(len(chunks)) if (labels / f"chunk_{k:03d}.npz").exists()]
    print(f"campaign {args.campaign}: {len(done)}/{len(chunks)} chunks labelled", flush=True)
    if args.status:
        return 0
    labels.mkdir(parents=True, exist_ok=True)
    plan = {"source": PLANS[args.campaign][0], "frames": picks, "chunk": CHUNK, "method": METHOD, "basis": BASIS}
    plan_file = folder / "plan.json"
    if plan_file.exists() and json.loads(plan_file.read_text()) != plan:
        sys.exit(f"{plan_file} differs from this plan; a changed plan needs a new campaign name")
    plan_file.write_text(json.dumps(plan, indent=1))
    source = Dataset.load(ROOT / plan["source"])
    engine = PySCFEngine(METHOD, BASIS, density_fit=True)
    start = time.time()
    for k, chunk in enumerate(chunks):
        path = labels / f"chunk_{k:03d}.npz"
        if path.exists():
            continue
        t0 = time.time()
        out = Dataset(metadata={**source.metadata, "esp_reference": ESP_REFERENCE,
                                "source": plan["source"], "source_frames": chunk})
        for index in chunk:
            frame = source.frames[index]
            out.append(replace(frame, esp_charges=esp_charges(engine, frame)))
        save_atomically(out, path)
        q = np.concatenate([f.esp_charges[f.elements == 8] for f in out.frames])
        print(f"chunk {k:03d}: {len(out)} frames, mean RESP q(O) {q.mean():+.3f} e ({time.time() - t0:.0f} s)",
              flush=True)
        if args.max_minutes is not None and (time.time() - start) / 60 > args.max_minutes:
            break
    done = [k for k in range(len(chunks)) if (labels / f"chunk_{k:03d}.npz").exists()]
    print(f"campaign {args.campaign}: {len(done)}/{len(chunks)} chunks labelled", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
