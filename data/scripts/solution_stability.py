"""Do solutions stay whole under an environment model?  10 ps of 300 K NVT of a shipped solution structure.

    python data/scripts/solution_stability.py nacl_water --model organic_condensed      # runs or continues
    python data/scripts/solution_stability.py peptide_water --model data/models/organic_condensed.pt
    python data/scripts/solution_stability.py nacl_water --model organic_condensed --report   # the numbers so far

Issue 17, point 5: with the ``organic`` model, ``data/structures/nacl_water`` (4 NaCl + 120 waters in a
15.65 Å box) and ``peptide_water`` (Ace-Ser-His-NMe in a droplet of 131 waters, held by a flat-bottom wall on
the water oxygens 1.5 Å beyond the droplet's radius) must keep every water and every solute whole for 10 ps
of Langevin dynamics at 300 K (0.5 fs, friction 1/ps), with no proton transfer; the first g(r) peaks of the
ions must sit at Na-O 2.3-2.5 Å and Cl-O 3.0-3.3 Å.

Checked on every recorded frame (every 10 fs): each topology bond shorter than 1.5 Å (X-H) or 2.0 Å
(heavy-heavy), each hydrogen's nearest heavy atom its own bonded partner (else a proton has moved), and no
two atoms closer than 0.7 x their covalent radii (checked since 2026-12-07, after the runs of
``organic_condensed_al3`` were found to end with Na+ and Cl- fused at 1.45 Å).  The step guard of
`qmml.Simulation` stops the run on the same contacts.
The run stops at the first broken frame and says so.

Resumable: the run lives in ``--out`` (default ``data/validation/solution_stability/<structure>_<model>``,
committed as it grows); it advances in chunks of ``--chunk-ps`` with a checkpoint (`qmml.Simulation`) and
one small file per chunk (``chunk_NNN.npz``, written atomically: the time span, the frames checked and the
ion-oxygen distance histograms of its frames), so running the same command again continues where it stopped.
``--report`` sums the chunks on disk and writes ``summary.json`` there.  Units: Å, fs, ps, K.
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

ROOT = Path(__file__).resolve().parents[2]
STRUCTURES = ROOT / "data" / "structures"
MAX_XH_A, MAX_HEAVY_A = 1.5, 2.0
MIN_CONTACT_FACTOR = 0.7  # as qmml.md.StepGuard: Na-Cl 1.88 Å, O-H 0.68 Å
WALL_MARGIN_A, WALL_K_EV_A2 = 1.5, 1.0
PEAKS = {"Na-O": ("Na", (2.0, 2.9), (2.3, 2.5)), "Cl-O": ("Cl", (2.7, 3.7), (3.0, 3.3))}


def load(structure: str):
    import qmml

    return qmml.load_system(str(STRUCTURES / f"{structure}.psf"), str(STRUCTURES / f"{structure}.pdb"))


def droplet_wall(potential, system):
    """``potential`` plus a flat-bottom wall on the water oxygens (an open droplet must not evaporate)."""
    import qmml

    oxygens = water_oxygens(system)
    centre = system.positions.mean(0)
    radius = np.linalg.norm(system.positions[oxygens] - centre, axis=1).max() + WALL_MARGIN_A

    class Wall(qmml.PotentialWrapper):
        def compute(self, positions, *, forces=True, cell=None):
            result = self.potential.compute(positions, forces=forces, cell=cell)
            d = positions[oxygens] - centre
            r = np.linalg.norm(d, axis=1)
            excess = np.clip(r - radius, 0.0, None)
            energy = 0.5 * WALL_K_EV_A2 * float(excess @ excess)
            changes = {"energy": result.energy + energy, "details": {**result.details, "wall_energy": energy}}
            if forces:
                total = result.forces.copy()
                total[oxygens] -= (WALL_K_EV_A2 * excess / np.maximum(r, 1e-12))[:, None] * d
                changes["forces"] = total
            return replace(result, **changes)

    return Wall(potential)


def bond_checks(system):
    """(bonds (n, 2), their length limits (n,), hydrogens, each hydrogen's bonded heavy atom, heavy atoms)."""
    bonds = np.asarray(system.bonds, dtype=int)
    hydrogen = system.elements == "H"
    has_h = hydrogen[bonds].any(axis=1)
    limits = np.where(has_h, MAX_XH_A, MAX_HEAVY_A)
    partner = {}
    for i, j in bonds[has_h]:
        h, x = (i, j) if hydrogen[i] else (j, i)
        partner[int(h)] = int(x)
    hs = np.array(sorted(partner), dtype=int)
    return bonds, limits, hs, np.array([partner[h] for h in hs], dtype=int), np.flatnonzero(~hydrogen)


def frame_problem(x, cell, checks, atomic_numbers=None) -> str | None:
    """What is broken in frame ``x`` (Å), or None: a bond too long, a proton nearer another heavy atom than its
    own, or (given the ``atomic_numbers``) two atoms closer than 0.7 x their covalent radii (fused ions)."""
    from qmml.md.guard import close_contacts
    from qmml.periodic.cell import minimum_image

    if atomic_numbers is not None:
        contacts = close_contacts(atomic_numbers, x, cell, MIN_CONTACT_FACTOR)
        if len(contacts):
            i, j, d = contacts[0]
            return f"atoms {int(i)} and {int(j)} are {d:.2f} Å apart (fused: under {MIN_CONTACT_FACTOR} x covalent radii)"
    bonds, limits, hs, partners, heavy = checks
    lengths = np.linalg.norm(minimum_image(x[bonds[:, 0]] - x[bonds[:, 1]], cell), axis=1)
    worst = int(np.argmax(lengths / limits))
    if lengths[worst] > limits[worst]:
        return f"bond {bonds[worst].tolist()} is {lengths[worst]:.2f} Å long"
    d = np.linalg.norm(minimum_image(x[hs][:, None, :] - x[heavy][None, :, :], cell), axis=2)
    nearest = heavy[np.argmin(d, axis=1)]
    moved = np.flatnonzero(nearest != partners)
    if len(moved):
        h = int(hs[moved[0]])
        return f"hydrogen {h} sits nearest atom {int(nearest[moved[0]])}, not its bonded atom {int(partners[moved[0]])}"
    return None


EDGES_A = np.arange(0.0, 6.0 + 0.02, 0.02)  # ion-oxygen histogram bins


def ion_histograms(x, cell, system) -> dict:
    """Counts of ion-water oxygen distances in frame ``x`` (Å), per ion element, on `EDGES_A`."""
    from qmml.periodic.cell import minimum_image

    oxygens = water_oxygens(system)
    out = {}
    for element, _, _ in PEAKS.values():
        centres = np.flatnonzero(system.elements == element)
        if len(centres):
            r = np.linalg.norm(minimum_image(x[centres][:, None, :] - x[oxygens][None, :, :], cell), axis=2)
            out[element] = np.histogram(r.ravel(), EDGES_A)[0]
    return out


def water_oxygens(system):
    return np.flatnonzero((system.elements == "O") & np.isin(system.resnames, ("TIP3", "WAT", "HOH", "SOL")))


def first_peak(counts, n_frames, n_centres, density, window):
    """Position (Å) and height of the highest g(r) bin inside ``window``."""
    mid = 0.5 * (EDGES_A[1:] + EDGES_A[:-1])
    g = counts / (n_frames * n_centres * density * 4.0 * np.pi * mid**2 * np.diff(EDGES_A))
    inside = (mid >= window[0]) & (mid <= window[1])
    k = int(np.argmax(np.where(inside, g, -1.0)))
    return float(mid[k]), float(g[k])


def run(args) -> int:
    from qmml.run_folder import RunFolderLock

    args.out.mkdir(parents=True, exist_ok=True)
    with RunFolderLock(args.out):  # a second process on the same folder exits 2, naming the holder
        return _run_locked(args)


def _run_locked(args) -> int:
    import qmml
    from qmml.md.reporters import Reporter

    system = load(args.structure)
    model = qmml.load_model(args.model)
    potential = qmml.MLPotential(model, system, total_charge=0)
    if system.cell is None:
        potential = droplet_wall(potential, system)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    checks = bond_checks(system)
    every = max(1, int(round(args.every_fs / args.timestep_fs)))
    chunk_steps = int(round(args.chunk_ps * 1000 / args.timestep_fs))
    total_steps = int(round(args.ps * 1000 / args.timestep_fs))
    info = {"structure": args.structure, "model": args.model, "timestep_fs": args.timestep_fs,
            "friction_per_ps": args.friction_per_ps, "temperature_K": args.temperature_K, "every_steps": every,
            "chunk_steps": chunk_steps}
    settings = out / "settings.json"
    if settings.exists() and json.loads(settings.read_text()) != info:
        sys.exit(f"{out} holds a run with other settings ({settings}); choose another --out")
    settings.write_text(json.dumps(info, indent=1))
    if (out / "broken.txt").exists():
        print((out / "broken.txt").read_text())
        return 1

    class Frames(Reporter):
        """Keeps every ``every``-th frame in memory; raises at the first broken one."""

        def __init__(self):
            super().__init__(out / "frames-in-memory", every)
            self.time_fs, self.counts = [], {}

        def start(self, simulation, resume=None):
            pass

        def report(self, simulation, state):
            if self.time_fs and state.time_fs <= self.time_fs[-1]:
                return
            problem = frame_problem(state.positions, simulation.system.cell, checks, system.atomic_numbers)
            if problem:
                raise RuntimeError(f"t = {state.time_fs:.0f} fs: {problem}")
            self.time_fs.append(state.time_fs)
            for element, counts in ion_histograms(state.positions, simulation.system.cell, system).items():
                self.counts[element] = self.counts.get(element, 0) + counts

        def finish(self, simulation):
            pass

    frames = Frames()
    integrator = qmml.Langevin(args.timestep_fs, args.temperature_K, args.friction_per_ps, seed=args.seed)
    checkpoint = out / "checkpoint.npz"
    log = [qmml.ThermoLog(out / "thermo.csv", every=every, plot=False)]
    if args.trajectory_every_fs:  # frames of the model's own run, for active learning (condensed_phase.py --from-run)
        log.append(qmml.TrajectoryWriter(out / "trajectory.extxyz",
                                         every=max(1, int(round(args.trajectory_every_fs / args.timestep_fs)))))
    if checkpoint.exists():
        sim = qmml.Simulation.restart(checkpoint, potential, integrator, reporters=[*log, frames],
                                      checkpoint_every=chunk_steps, progress=args.progress)
    else:
        sim = qmml.Simulation(potential, integrator, reporters=[*log, frames], temperature_K=args.temperature_K,
                              seed=args.seed, checkpoint=checkpoint, checkpoint_every=chunk_steps,
                              progress=args.progress)
    start = time.time()
    while sim.state.step < total_steps:
        k = sim.state.step // chunk_steps
        frames.time_fs, frames.counts = [], {}
        t0 = time.time()
        try:
            sim.run(min(chunk_steps, total_steps - sim.state.step))
        except RuntimeError as err:
            (out / "broken.txt").write_text(f"stopped: {err}\n")
            print(f"stopped: {err}", flush=True)
            return 1
        tmp = out / f".chunk_{k:03d}.npz"
        np.savez_compressed(tmp, time_fs=np.array(frames.time_fs), **{f"counts_{e}": c for e, c in frames.counts.items()})
        os.replace(tmp, out / f"chunk_{k:03d}.npz")
        print(f"chunk {k:03d}: to {sim.state.time_fs / 1000:.2f} ps, T = {sim.temperature():.0f} K, "
              f"{(time.time() - t0) / chunk_steps:.3f} s/step", flush=True)
        if sim.stopped_by is not None:  # SIGTERM or the stop file: the checkpoint holds the last step
            print(f"stopped by {sim.stopped_by} at {sim.state.time_fs / 1000:.2f} ps; the same command continues",
                  flush=True)
            return 0
        if args.max_minutes is not None and (time.time() - start) / 60 > args.max_minutes:
            break
    return report(args)


def report(args) -> int:
    system = load(args.structure)
    out = args.out
    files = sorted(out.glob("chunk_*.npz"))
    if not files:
        sys.exit(f"no chunks in {out} yet")
    chunks = [dict(np.load(f)) for f in files]
    times = np.concatenate([c["time_fs"] for c in chunks])
    summary = {"structure": args.structure, "model": args.model, "simulated_ps": float(times.max() / 1000),
               "frames_checked": int(len(times)), "whole_and_no_proton_transfer": not (out / "broken.txt").exists(),
               "broken": (out / "broken.txt").read_text().strip() if (out / "broken.txt").exists() else None}
    used = [c for c in chunks if c["time_fs"].min() >= args.discard_ps * 1000]
    n_frames = sum(len(c["time_fs"]) for c in used)
    oxygens = water_oxygens(system)
    if system.cell is not None:
        density = len(oxygens) / abs(np.linalg.det(system.cell))
    else:  # a droplet: the oxygens' density in the sphere they fill at the start (heights are then approximate)
        x = system.positions[oxygens]
        density = len(oxygens) / (4.0 / 3.0 * np.pi * np.linalg.norm(x - x.mean(0), axis=1).max() ** 3)
    for name, (element, window, target) in PEAKS.items():
        centres = np.flatnonzero(system.elements == element)
        if len(centres) and n_frames:
            counts = sum(c[f"counts_{element}"] for c in used)
            r, g = first_peak(counts, n_frames, len(centres), density, window)
            summary.update({f"{name}_first_peak_A": round(r, 3), f"{name}_first_peak_height": round(g, 2),
                            f"{name}_target_A": list(target), f"{name}_within_target": bool(target[0] <= r <= target[1])})
    summary["g_r_frames"] = n_frames
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("structure", choices=["nacl_water", "peptide_water"])
    parser.add_argument("--model", default="organic", help="shipped model name or .pt file")
    parser.add_argument("--ps", type=float, default=10.0)
    parser.add_argument("--chunk-ps", type=float, default=0.5)
    parser.add_argument("--timestep-fs", type=float, default=0.5)
    parser.add_argument("--temperature-K", type=float, default=300.0)
    parser.add_argument("--friction-per-ps", type=float, default=1.0)
    parser.add_argument("--every-fs", type=float, default=10.0, help="frames checked and kept, fs")
    parser.add_argument("--discard-ps", type=float, default=1.0, help="equilibration left out of g(r), ps")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trajectory-every-fs", type=float, default=None,
                        help="also write trajectory.extxyz (the model's own frames, for active learning), fs")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after the chunk that passes this")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = ROOT / "data" / "validation" / "solution_stability" / f"{args.structure}_{Path(args.model).stem}"
    if args.report:
        return report(args)
    from qmml.errors import InputError

    try:
        return run(args)
    except InputError as err:  # e.g. the folder is in use by another process
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
