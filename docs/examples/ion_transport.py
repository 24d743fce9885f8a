"""Ion transport in NaCl(aq) with the ``organic`` ML model: diffusion, conductivity, Nernst-Einstein.

    OMP_NUM_THREADS=1 python docs/examples/ion_transport.py --quick            # < 1 min, a smoke run
    OMP_NUM_THREADS=1 python docs/examples/ion_transport.py --model data/models/organic_condensed_al3.pt \\
        --equilibration-ps 1 --production-ps 20 --production-friction 0.1 --out run/ --max-minutes 150
        # ~2-3 h on one core; the same command continues a stopped run (checkpoints and frame chunks in run/)
    python docs/examples/ion_transport.py --analyse run/                        # re-analyse saved frames

System: data/structures/nacl_water.{psf,pdb}, 4 Na+ + 4 Cl- + 120 waters in a 15.65 Å periodic cube
(1.73 mol/L; data/scripts/make_electrolyte.py).  See docs/ion_transport.md for the physics, the
choices made here and measured numbers.

Steps
1. Equilibrate with Langevin dynamics (BAOAB, 300 K, friction 5/ps).
2. Production without a thermostat (velocity Verlet, NVE) by default: a Langevin thermostat adds
   friction and random kicks to every atom, which slows diffusion (by a factor ~1/(1 + gamma tau)
   for a velocity relaxation time tau) and destroys the velocity correlations Green-Kubo integrates.
   ``--production-friction`` (1/ps) gives weak Langevin instead, for runs long enough to drift.
3. Analysis (array-based, all from the saved unwrapped positions and velocities):
   * self-diffusion D of water O, Na+ and Cl- from the multiple-time-origin MSD (centre-of-mass
     drift removed), with the Yeh-Hummer finite-size correction
     D_inf = D_PBC + xi k_B T / (6 pi eta L), xi = 2.837297 (cubic box), eta given by ``--viscosity``;
   * Green-Kubo conductivity from the collective current J = sum_i q_i v_i with formal charges;
   * the same from the Einstein relation, sigma = lim d<|M(t) - M(0)|^2>/dt / (6 V k_B T),
     M = sum_i q_i r_i(t) (unwrapped);
   * Nernst-Einstein sigma_NE = e^2 / (V k_B T) (N+ D+ + N- D-) (self terms only) and the Haven ratio
     H = sigma_NE / sigma (1 for uncorrelated ions; cross-correlations of ion motion make it differ);
   * error bars from blocks: the production is cut into ``--blocks`` consecutive blocks, each
     analysed on its own (multiple time origins inside a block); the error is the standard error of
     the block values.

Formal charges (+1, -1, 0 for every water atom) define the current, not the model's charges: the
conductivity is the transport of net charge over long distances, and each molecule carries its own
integer charge however the model shares it out among atoms (Na+ is predicted at about +0.7 e, the
rest sits on its solvation shell and moves with it).  The partial charges of a neutral water only
rotate and vibrate: their current integrates to a bounded dipole change, which adds no DC
conductivity, only noise.  With formal charges the water drops out exactly.

Speed: the Coulomb term's neighbour list (cutoff 9 Å, more than half the 15.65 Å box) dominates the
cost of a step.  `MLPotential` keeps it Verlet-style (`neighbour_skin_A`: pairs within cutoff + skin, searched
again when an atom has moved more than skin/2), which gives exactly the same pairs and forces.

Status: the shipped ``organic`` model breaks a water (a proton leaves it) within 30-70 fs at 300 K, in
this box and in pure water; the run stops there (`BrokenStructure`).  The condensed-phase candidate
``data/models/organic_condensed_al3.pt`` kept this box whole for 10 ps in four runs
(data/validation/solution_stability).  See docs/ion_transport.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import qmml
from qmml import units
from qmml.analysis.transport import green_kubo_conductivity, msd_all_origins, yeh_hummer_correction
from qmml.md.reporters import Reporter
from qmml.ml.model import COULOMB_FORMS

ROOT = Path(__file__).resolve().parents[2]
STRUCTURE = (ROOT / "data" / "structures" / "nacl_water.psf", ROOT / "data" / "structures" / "nacl_water.pdb")
#: Formal charge of each element in the electrolyte (e); water atoms carry none (neutral molecule).
FORMAL_CHARGES = {"Na": 1.0, "Cl": -1.0, "O": 0.0, "H": 0.0}
#: Experimental viscosity of water at 300 K, mPa s (0.890 at 298.15 K).
WATER_VISCOSITY_300K_MPA_S = 0.853


# -- potential ------------------------------------------------------------------------------
def load_electrolyte(structure=STRUCTURE) -> qmml.System:
    return qmml.load_system(*[str(p) for p in structure])


def make_potential(system, *, model: str = "organic", coulomb: str | None = None, members=None,
                   skin_A: float = 1.0) -> qmml.MLPotential:
    """``model`` (a shipped name or a .pt file) on the whole box, charges conserved over the neutral structure;
    its pair lists (descriptors, Coulomb term, Ewald real space) are kept between steps with a ``skin_A``
    Verlet skin."""
    model = qmml.load_model(model)
    if coulomb is not None and coulomb != model.coulomb_form:
        model = model.with_coulomb(coulomb)
    return qmml.MLPotential(model, system, total_charge=0, members=members, neighbour_skin_A=skin_A)


def coulomb_forms(model: str = "organic") -> list[str]:
    model = qmml.load_model(model)
    if not hasattr(model, "with_coulomb"):
        return [getattr(model, "coulomb_form", "dsf")]
    return list(COULOMB_FORMS)


# -- dynamics -------------------------------------------------------------------------------
class BrokenStructure(RuntimeError):
    """A covalent bond stretched beyond ``MAX_BOND_A``: the model has left its physical region."""


#: Longest O-H bond (Å) a recorded frame may have; beyond it the run is stopped and cut back.
MAX_BOND_A = 1.5


class FrameRecorder(Reporter):
    """In-memory reporter: unwrapped positions (Å), velocities (Å/fs) and model charges every ``every`` steps.

    Stops the run (`BrokenStructure`) when a bond of ``bonds`` gets longer than `MAX_BOND_A`: an ML
    model can have unphysical low-energy regions (a proton leaving its water), and frames from there
    must not enter the analysis.
    """

    def __init__(self, every: int, bonds=None, *, chunks: Path | None = None, chunk_steps: int = 500,
                 elements=None):
        super().__init__("frames-in-memory", every)  # writes no file of its own: start and bookmark do nothing
        self.bonds = None if bonds is None or len(bonds) == 0 else np.asarray(bonds)
        self.time_fs, self.positions, self.velocities, self.charges, self.energy = [], [], [], [], []
        self.steps, self.com, self.kinetic = [], [], []
        self.chunks, self.chunk_steps, self.last_time_fs = chunks, int(chunk_steps), None
        if chunks is not None:
            self.tracked, self.ions = tracked_atoms(elements)

    def start(self, simulation, resume=None):
        pass

    def report(self, simulation, state):
        if self.last_time_fs is not None and state.time_fs <= self.last_time_fs:
            return  # a continued run() reports its first state again
        if self.bonds is not None:
            x = state.positions
            longest = np.linalg.norm(x[self.bonds[:, 0]] - x[self.bonds[:, 1]], axis=1).max()
            if longest > MAX_BOND_A:
                raise BrokenStructure(f"a bond is {longest:.2f} Å long at t = {state.time_fs:.1f} fs")
        self.last_time_fs = state.time_fs
        self.time_fs.append(state.time_fs)
        self.steps.append(state.step)
        self.positions.append(state.positions.copy())
        self.velocities.append(state.velocities.copy())
        self.charges.append(np.asarray(simulation.atom_charges(state), dtype=np.float32))
        kinetic = simulation.kinetic_energy(state)
        self.kinetic.append(kinetic)
        self.com.append(simulation.masses @ state.positions / simulation.masses.sum())
        self.energy.append(state.potential_energy + kinetic)
        # written here, before the simulation's checkpoint of the same step: a restart never skips frames
        if self.chunks is not None and state.step > 0 and state.step % self.chunk_steps == 0:
            self.flush()

    def finish(self, simulation):
        if self.chunks is not None:
            self.flush()  # frames since the last chunk of a run that stopped between chunks (SIGTERM)

    def flush(self) -> None:
        """Write the frames held since the last chunk to ``frames_<first step>.npz`` and forget them.  Kept per
        frame: heavy atoms' positions (Å; hydrogens follow their oxygens), the ions' velocities (Å/fs; the
        formal-charge current), the centre of mass, kinetic and total energy (eV), the ions' model charges."""
        if not self.time_fs:
            return
        x, v = np.array(self.positions), np.array(self.velocities)
        data = {"time_fs": np.array(self.time_fs), "step": np.array(self.steps),
                "positions": x[:, self.tracked].astype(np.float32),
                "ion_velocities": v[:, self.ions].astype(np.float32), "com": np.array(self.com),
                "kinetic_energy": np.array(self.kinetic), "total_energy": np.array(self.energy),
                "ion_charges": np.array(self.charges)[:, self.ions]}
        tmp = self.chunks / ".frames.tmp.npz"
        np.savez_compressed(tmp, **data)
        tmp.replace(self.chunks / f"frames_{self.steps[0]:08d}.npz")
        for name in ("time_fs", "steps", "positions", "velocities", "charges", "energy", "com", "kinetic"):
            getattr(self, name).clear()

    def cut(self, before_fs: float) -> None:
        """Drop the frames at and after ``before_fs``."""
        keep = sum(t < before_fs for t in self.time_fs)
        for name in ("time_fs", "positions", "velocities", "charges", "energy"):
            del getattr(self, name)[keep:]

    def arrays(self) -> dict:
        return {"time_fs": np.array(self.time_fs), "positions": np.array(self.positions),
                "velocities": np.array(self.velocities), "charges": np.array(self.charges),
                "total_energy": np.array(self.energy)}


@dataclass
class RunSettings:
    timestep_fs: float = 0.5
    temperature_K: float = 300.0
    equilibration_steps: int = 2000
    production_steps: int = 20000
    friction_per_ps: float = 5.0
    production_friction_per_ps: float = 0.0
    every: int = 4
    seed: int = 1
    coulomb: str | None = None
    members: tuple | None = None
    skin_A: float = 1.0
    model: str = "organic"


def tracked_atoms(elements):
    """Indices of the atoms whose positions a resumable run keeps (all but hydrogens) and of the ions."""
    elements = np.asarray(elements, dtype=str)
    charged = [e for e, q in FORMAL_CHARGES.items() if q != 0]
    return np.flatnonzero(elements != "H"), np.flatnonzero(np.isin(elements, charged))


def simulate(system, settings: RunSettings, *, out: Path | None = None, save_every: int = 500, log=print,
             max_minutes: float | None = None) -> dict | None:
    """Equilibrate, then run production recording frames.

    Without ``out`` everything stays in memory and the full frame arrays come back.  With ``out`` the run is
    resumable: checkpoints every ``save_every`` steps, the equilibrated state, and one ``frames_<step>.npz`` per
    ``save_every`` production steps (what the analysis needs: heavy atoms' positions, ions' velocities); the same
    call continues where a stopped run ended, and returns `load_frames` of the folder, or None when it stopped
    (SIGTERM, ``max_minutes``) before the end."""
    if out is None:
        return _simulate(system, settings, None, save_every, log, max_minutes)
    from qmml.run_folder import RunFolderLock

    out.mkdir(parents=True, exist_ok=True)
    with RunFolderLock(out):  # a second process on the same folder exits, naming the holder
        return _simulate(system, settings, out, save_every, log, max_minutes)


def _write_atomically(path: Path, **arrays) -> None:
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def _simulate(system, settings, out, save_every, log, max_minutes):
    started = time.perf_counter()
    if out is not None:
        described = {"settings": asdict(settings), "save_every": save_every, "elements": list(system.elements),
                     "masses": np.asarray(system.masses).tolist(), "cell": np.asarray(system.cell).tolist()}
        described["settings"]["members"] = None if settings.members is None else list(settings.members)
        run_file = out / "run.json"
        if run_file.exists() and json.loads(run_file.read_text()) != described:
            raise SystemExit(f"{out} holds a run with other settings ({run_file}); choose another --out")
        run_file.write_text(json.dumps(described))
        if (out / "broken.txt").exists():
            log((out / "broken.txt").read_text().strip())
            return load_frames(out)
    potential = make_potential(system, model=settings.model, coulomb=settings.coulomb,
                               members=None if settings.members is None else list(settings.members),
                               skin_A=settings.skin_A)

    def out_of_time():
        return max_minutes is not None and (time.perf_counter() - started) / 60 > max_minutes

    def simulation(checkpoint, integrator, reporters, **start):
        if checkpoint is not None and checkpoint.exists():
            return qmml.Simulation.restart(checkpoint, potential, integrator, reporters=reporters,
                                           checkpoint_every=save_every, progress=False)
        return qmml.Simulation(potential, integrator, reporters=reporters, checkpoint=checkpoint,
                               checkpoint_every=save_every, progress=False, **start)

    equilibrated = None if out is None else out / "equilibrated.npz"
    t0 = time.perf_counter()
    if equilibrated is not None and equilibrated.exists():
        with np.load(equilibrated) as state:
            x0, v0 = state["positions"], state["velocities"]
        t_equil = float("nan")
    else:
        # every recorded frame is checked for broken bonds: stop at the first unphysical frame
        watch = FrameRecorder(10, system.bonds)
        equil = simulation(None if out is None else out / "equilibration_checkpoint.npz",
                           qmml.Langevin(settings.timestep_fs, settings.temperature_K, settings.friction_per_ps,
                                         seed=settings.seed),
                           [watch], temperature_K=settings.temperature_K, seed=settings.seed)
        while equil.state.step < settings.equilibration_steps:
            try:
                equil.run(min(save_every, settings.equilibration_steps - equil.state.step))
            except (BrokenStructure, qmml.UnstableDynamicsError) as err:
                raise BrokenStructure(f"equilibration left the model's physical region: {err} (step "
                                      f"{equil.state.step}, T = {equil.temperature():.0f} K); see "
                                      "docs/ion_transport.md, 'A model limitation'") from None
            del watch.positions[:], watch.velocities[:]  # only its bond check was needed
            if equil.state.step < settings.equilibration_steps and (equil.stopped_by is not None or out_of_time()):
                log(f"stopped in equilibration at step {equil.state.step}; the same command continues")
                return None
        x0, v0 = equil.state.positions, equil.state.velocities
        if equilibrated is not None:
            _write_atomically(equilibrated, positions=x0, velocities=v0)
        t_equil = time.perf_counter() - t0
        log(f"equilibration: {settings.equilibration_steps} steps in {t_equil:.0f} s, T = {equil.temperature():.0f} K")
    if settings.production_friction_per_ps > 0:
        integrator = qmml.Langevin(settings.timestep_fs, settings.temperature_K,
                                   settings.production_friction_per_ps, seed=settings.seed + 1)
    else:
        integrator = qmml.VelocityVerlet(settings.timestep_fs)
    recorder = FrameRecorder(settings.every, system.bonds, chunks=out, chunk_steps=save_every,
                             elements=system.elements)
    prod = simulation(None if out is None else out / "production_checkpoint.npz", integrator, [recorder],
                      positions=x0, velocities=v0)
    if prod.state.step > 0:
        recorder.last_time_fs = prod.state.time_fs  # recorded before the checkpoint was written
    t1, first, broken = time.perf_counter(), prod.state.step, None
    while prod.state.step < settings.production_steps and broken is None:
        try:
            prod.run(min(save_every - prod.state.step % save_every, settings.production_steps - prod.state.step))
        except (BrokenStructure, qmml.UnstableDynamicsError) as err:  # a bond, fused atoms, a runaway step
            # the approach to the broken geometry is already unphysical: drop the last 100 fs too
            cut = prod.state.time_fs - 100.0
            broken = f"{err}; frames from {cut:.0f} fs on dropped"
            recorder.cut(cut)
            if out is not None:
                recorder.flush()
                (out / "broken.txt").write_text(f"stopped: {broken}\ncut_fs = {cut}\n")
            log(f"stopped: {broken}")
        rate = (time.perf_counter() - t1) / max(1, prod.state.step - first)
        log(f"production: {prod.state.step}/{settings.production_steps} steps, {rate:.3f} s/step, "
            f"T = {prod.temperature():.0f} K")
        unfinished = broken is None and prod.state.step < settings.production_steps
        if unfinished and (prod.stopped_by is not None or out_of_time()):
            log(f"stopped at production step {prod.state.step}; the same command continues")
            return None
    meta = {"settings": asdict(settings), "production_steps_done": prod.state.step, "broken": broken,
            "seconds_per_step_equilibration": t_equil / max(1, settings.equilibration_steps),
            "seconds_per_step_production": (time.perf_counter() - t1) / max(1, prod.state.step - first),
            "neighbour_list_builds": potential.neighbours.builds, "n_atoms": system.n_atoms,
            "volume_A3": float(abs(np.linalg.det(system.cell))), "machine": machine()}
    if out is None:
        return {**recorder.arrays(), "meta": meta}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return load_frames(out)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


def load_frames(out: Path) -> dict:
    """The production frames of a run folder (`simulate` with ``out``), in order, with the atoms they keep.

    Raises SystemExit when a frame file is missing from the sequence (the time step between frames jumps)."""
    out = Path(out)
    described = json.loads((out / "run.json").read_text())
    files = sorted(out.glob("frames_*.npz"))
    if not files:
        raise SystemExit(f"{out}: no production frames yet; run the same command to continue")
    parts = [dict(np.load(f)) for f in files]
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    steps = data["step"]
    gaps = np.flatnonzero(np.diff(steps) != described["settings"]["every"])
    if len(gaps):
        raise SystemExit(f"{out}: frames jump from step {steps[gaps[0]]} to {steps[gaps[0] + 1]} (a file of that "
                         "span is missing); continue from an intact copy of the folder")
    broken = out / "broken.txt"
    if broken.exists():
        cut = float(broken.read_text().split("cut_fs = ")[1])
        keep = data["time_fs"] < cut
        data = {k: v[keep] for k, v in data.items()}
    elements = np.array(described["elements"])
    tracked, _ = tracked_atoms(elements)
    meta_file = out / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {"settings": described["settings"]}
    return {**data, "elements": elements[tracked], "masses": np.asarray(described["masses"])[tracked],
            "cell": np.asarray(described["cell"]), "n_atoms": len(elements), "meta": meta}


# -- analysis (array based; see docs/ion_transport.md for what should move to qmml.analysis) --
def remove_drift(positions, masses):
    """Positions relative to the system's centre of mass (a thermostat's net momentum drifts it)."""
    com = np.einsum("tia,i->ta", positions, masses) / masses.sum()
    return positions - com[:, None, :]


def fit_slope(lag, y, start, stop):
    window = (lag >= start) & (lag <= stop)
    if window.sum() < 3:
        raise ValueError(f"fit window {start:g}-{stop:g} fs holds {int(window.sum())} points; lengthen the run")
    return float(np.polyfit(lag[window], y[window], 1)[0])


def block_quantities(t, x, v_ions, q, groups, volume_A3, temperature_K, fit, gk_max_fs):
    """D per group (Å^2/fs), sigma Green-Kubo / Einstein / Nernst-Einstein (S/m) of one block, from positions
    without the centre-of-mass drift and the velocities of the charged atoms (in the order of ``q``'s non-zeros)."""
    dt = t[1] - t[0]
    lag = np.arange(len(t)) * dt
    out = {}
    for name, idx in groups.items():
        out[f"D_{name}"] = fit_slope(lag, msd_all_origins(x[:, idx]).mean(1), *fit) / 6.0
    kT = units.BOLTZMANN_EV_PER_K * temperature_K
    m_dipole = np.einsum("tia,i->ta", x, q)  # collective translational dipole, e Å
    out["sigma_einstein"] = fit_slope(lag, msd_all_origins(m_dipole[:, None])[:, 0], *fit) / (6 * volume_A3 * kT) \
        * units.CONDUCTIVITY_S_PER_M
    current = np.einsum("tia,i->ta", v_ions, q[q != 0])  # e Å/fs
    max_lag = min(len(t) - 1, round(gk_max_fs / dt))
    gk = green_kubo_conductivity(current, timestep_fs=dt, volume_A3=volume_A3, temperature_K=temperature_K,
                                 max_lag=max_lag)
    out["sigma_green_kubo"] = gk.S_per_m
    n_plus, n_minus = int((q > 0).sum()), int((q < 0).sum())
    out["sigma_nernst_einstein"] = (n_plus * out["D_Na"] + n_minus * out["D_Cl"]) / (volume_A3 * kT) \
        * units.CONDUCTIVITY_S_PER_M
    out["_gk"], out["_lag"], out["_msd_M"] = gk, lag, msd_all_origins(m_dipole[:, None])[:, 0]
    return out


def analyse(frames: dict, *, blocks: int = 4, fit_fs=None, gk_max_fs: float | None = None,
            viscosity_mPa_s: float = WATER_VISCOSITY_300K_MPA_S, temperature_K: float | None = None) -> dict:
    """Transport coefficients with block standard errors from saved frames (see the module docstring)."""
    t = np.asarray(frames["time_fs"], float)
    t = t - t[0]
    elements = [str(e) for e in frames["elements"]]
    q = np.array([FORMAL_CHARGES[e] for e in elements])
    masses = np.asarray(frames["masses"], float)
    cell = np.asarray(frames["cell"], float)
    volume = float(abs(np.linalg.det(cell)))
    box = volume ** (1 / 3)
    temperature = temperature_K or frames["meta"]["settings"]["temperature_K"]
    groups = {"O": [i for i, e in enumerate(elements) if e == "O"],
              "Na": [i for i, e in enumerate(elements) if e == "Na"],
              "Cl": [i for i, e in enumerate(elements) if e == "Cl"]}
    groups = {k: idx for k, idx in groups.items() if idx or k != "O"}  # ions only is fine (tests)
    n_block = len(t) // blocks
    block_span = t[n_block - 1]
    # fit the diffusive regime: skip the ballistic/cage part (first 20 %), stop before the noisy tail
    fit = fit_fs or (0.2 * block_span, 0.6 * block_span)
    gk_max = gk_max_fs or 0.5 * block_span
    # a resumable run keeps the centre of mass and the ions' velocities; an in-memory one every atom's
    x = np.asarray(frames["positions"], float)
    x = x - np.asarray(frames["com"])[:, None, :] if "com" in frames else remove_drift(x, masses)
    v_ions = frames["ion_velocities"] if "ion_velocities" in frames else np.asarray(frames["velocities"])[:, q != 0]
    v_ions = np.asarray(v_ions, float)
    rows = []
    for b in range(blocks):
        sl = slice(b * n_block, (b + 1) * n_block)
        rows.append(block_quantities(t[sl] - t[sl][0], x[sl], v_ions[sl], q, groups, volume, temperature, fit,
                                     gk_max))
    keys = [k for k in rows[0] if not k.startswith("_")]
    values = {k: np.array([r[k] for r in rows]) for k in keys}
    mean = {k: float(v.mean()) for k, v in values.items()}
    err = {k: float(v.std(ddof=1) / np.sqrt(blocks)) if blocks > 1 else float("nan") for k, v in values.items()}
    correction = yeh_hummer_correction(temperature, box, viscosity_mPa_s)
    result = {"blocks": blocks, "block_ps": block_span / 1000, "fit_fs": list(fit), "green_kubo_max_fs": gk_max,
              "volume_A3": volume, "box_A": box, "temperature_K": temperature,
              "kinetic_temperature_K": kinetic_temperature(frames), "viscosity_mPa_s": viscosity_mPa_s,
              "yeh_hummer_cm2_per_s": correction * units.A2_PER_FS_CM2_PER_S,
              "n_ions": {"Na": len(groups["Na"]), "Cl": len(groups["Cl"])}, "n_water": len(groups.get("O", []))}
    for name in groups:
        k = f"D_{name}"
        result[k] = {"pbc_cm2_per_s": mean[k] * units.A2_PER_FS_CM2_PER_S,
                     "corrected_cm2_per_s": (mean[k] + correction) * units.A2_PER_FS_CM2_PER_S,
                     "stderr_cm2_per_s": err[k] * units.A2_PER_FS_CM2_PER_S,
                     "blocks_cm2_per_s": (values[k] * units.A2_PER_FS_CM2_PER_S).tolist()}
    for k in ("sigma_green_kubo", "sigma_einstein", "sigma_nernst_einstein"):
        result[k] = {"S_per_m": mean[k], "stderr_S_per_m": err[k], "blocks_S_per_m": values[k].tolist()}
    # Nernst-Einstein with the finite-size-corrected D (the collective conductivity needs no such
    # correction to leading order: the charge current of a neutral box carries no net momentum)
    kT = units.BOLTZMANN_EV_PER_K * temperature
    result["sigma_nernst_einstein_corrected_S_per_m"] = mean["sigma_nernst_einstein"] + \
        (len(groups["Na"]) + len(groups["Cl"])) * correction / (volume * kT) * units.CONDUCTIVITY_S_PER_M
    for kind in ("green_kubo", "einstein"):
        s, ds = mean[f"sigma_{kind}"], err[f"sigma_{kind}"]
        ne, dne = mean["sigma_nernst_einstein"], err["sigma_nernst_einstein"]
        haven = ne / s if s != 0 else float("inf")
        result[f"haven_ratio_{kind}"] = {"value": haven,
                                         "stderr": abs(haven) * np.hypot(ds / s, dne / ne) if s and ne else float("nan")}
    result["_last_block"] = rows[-1]
    return result


def kinetic_temperature(frames) -> float:
    if "kinetic_energy" in frames:
        return float(2 * np.mean(frames["kinetic_energy"]) / ((3 * frames["n_atoms"] - 3) * units.BOLTZMANN_EV_PER_K))
    m = np.asarray(frames["masses"], float)
    ke = 0.5 * np.einsum("i,tia->", m, np.asarray(frames["velocities"]) ** 2) * units.AMU_A2_PER_FS2_EV
    ke /= len(frames["velocities"])
    return float(2 * ke / ((3 * len(m) - 3) * units.BOLTZMANN_EV_PER_K))


def report(result: dict) -> str:
    lines = [(f"{result['n_ions']['Na']} Na+ + {result['n_ions']['Cl']} Cl- + {result['n_water']} H2O, "
              f"L = {result['box_A']:.2f} Å, <T_kin> = {result['kinetic_temperature_K']:.0f} K; "
              f"{result['blocks']} blocks of {result['block_ps']:.2f} ps, MSD fit {result['fit_fs'][0]:.0f}-"
              f"{result['fit_fs'][1]:.0f} fs, Green-Kubo to {result['green_kubo_max_fs']:.0f} fs"),
             (f"Yeh-Hummer correction (eta = {result['viscosity_mPa_s']} mPa s): "
              f"+{result['yeh_hummer_cm2_per_s'] * 1e5:.2f}e-5 cm^2/s"),
             "D (1e-5 cm^2/s)      PBC            corrected   experiment (298 K, infinite dilution)"]
    for name, label, expt in (("O", "water O", 2.30), ("Na", "Na+", 1.33), ("Cl", "Cl-", 2.03)):
        if f"D_{name}" not in result:
            continue
        d = result[f"D_{name}"]
        lines.append(f"  {label:8s}   {d['pbc_cm2_per_s'] * 1e5:6.2f} +- {d['stderr_cm2_per_s'] * 1e5:4.2f}"
                     f"      {d['corrected_cm2_per_s'] * 1e5:6.2f}      {expt:.2f}")
    for k, label in (("sigma_green_kubo", "Green-Kubo"), ("sigma_einstein", "Einstein"),
                     ("sigma_nernst_einstein", "Nernst-Einstein (PBC D)")):
        s = result[k]
        lines.append(f"sigma {label:24s} {s['S_per_m']:7.2f} +- {s['stderr_S_per_m']:5.2f} S/m")
    lines.append(f"sigma Nernst-Einstein (corrected D) {result['sigma_nernst_einstein_corrected_S_per_m']:7.2f} S/m")
    for kind in ("green_kubo", "einstein"):
        h = result[f"haven_ratio_{kind}"]
        lines.append(f"Haven ratio sigma_NE / sigma_{kind:10s} {h['value']:6.2f} +- {h['stderr']:.2f}")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    last = result["_last_block"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    gk = last["_gk"]
    a.plot(gk.lag_fs / 1000, gk.running_S_per_m)
    a.set(xlabel="integration time / ps", ylabel="running Green-Kubo sigma / (S/m)", title="last block")
    b.plot(last["_lag"] / 1000, last["_msd_M"])
    b.set(xlabel="lag / ps", ylabel="<|M(t)-M(0)|^2> / (e Å)^2", title="collective charge displacement")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run under a minute (5 fs + 25 fs; numbers meaningless)")
    p.add_argument("--equilibration-ps", type=float, default=1.0)
    p.add_argument("--production-ps", type=float, default=10.0)
    p.add_argument("--timestep-fs", type=float, default=0.5)
    p.add_argument("--temperature", type=float, default=300.0, help="K")
    p.add_argument("--production-friction", type=float, default=0.0,
                   help="1/ps; 0 (default): NVE production. A small value (e.g. 0.1) gives weak Langevin")
    p.add_argument("--every", type=int, default=4, help="record a frame every this many steps")
    p.add_argument("--model", default="organic", help="shipped model name or .pt file (default: organic)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop after this long (with --out: the same command continues)")
    p.add_argument("--coulomb", choices=COULOMB_FORMS, default=None,
                   help="Coulomb form of the model's explicit term (default: the model's own, 'dsf')")
    p.add_argument("--members", type=int, nargs="*", default=None,
                   help="committee members to use (default all; a single member is cheaper but, for this "
                        "model, falls into unphysical proton-transfer holes within tens of fs)")
    p.add_argument("--skin", type=float, default=1.0, help="Verlet skin of the kept pair lists, Å (0: a fresh search every step)")
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--viscosity", type=float, default=WATER_VISCOSITY_300K_MPA_S,
                   help="shear viscosity for the Yeh-Hummer correction, mPa s (default: water at 300 K, experiment)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=None,
                   help="run folder: checkpoints, frames_*.npz, results.json, summary.txt; the same command continues "
                        "a stopped run there")
    p.add_argument("--analyse", type=Path, default=None, help="only analyse the frames saved in this run folder")
    args = p.parse_args(argv)

    if args.analyse is not None:
        if not (args.analyse / "run.json").exists():
            print(f"ion_transport: {args.analyse} holds no run (no run.json): give the --out folder of a run",
                  file=sys.stderr)
            raise SystemExit(2)
        frames, out = load_frames(args.analyse), args.analyse
    else:
        if args.quick:
            args.equilibration_ps, args.production_ps, args.every, args.blocks = 0.005, 0.025, 1, 2
        n_eq = round(args.equilibration_ps * 1000 / args.timestep_fs)
        n_prod = round(args.production_ps * 1000 / args.timestep_fs)
        settings = RunSettings(timestep_fs=args.timestep_fs, temperature_K=args.temperature, equilibration_steps=n_eq,
                               production_steps=n_prod, production_friction_per_ps=args.production_friction,
                               every=args.every, seed=args.seed, coulomb=args.coulomb,
                               members=None if args.members is None else tuple(args.members), skin_A=args.skin,
                               model=args.model)
        system = load_electrolyte()
        print(f"{system.n_atoms} atoms, {n_eq} equilibration + {n_prod} production steps of {args.timestep_fs} fs, "
              f"model {args.model}", flush=True)
        frames = simulate(system, settings, out=args.out, log=lambda s: print(s, flush=True),
                          max_minutes=args.max_minutes)
        if frames is None:
            return None  # stopped before the end; the same command continues
        if args.out is None:
            frames.update(elements=np.array(system.elements), masses=np.asarray(system.masses),
                          cell=np.asarray(system.cell))
        out = args.out
    result = analyse(frames, blocks=args.blocks, viscosity_mPa_s=args.viscosity)
    text = report(result)
    print(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.txt").write_text(text + "\n")
        (out / "results.json").write_text(json.dumps({**{k: v for k, v in result.items() if not k.startswith("_")},
                                                      "run": frames["meta"]}, indent=1))
        try:
            plot(result, out / "transport.png")
        except ImportError:
            pass
    return result


if __name__ == "__main__":
    try:
        main()
    except BrokenStructure as err:
        sys.exit(f"ion_transport: {err}")
