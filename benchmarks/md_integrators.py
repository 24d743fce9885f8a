"""MD benchmark: NVE energy drift, SCF cycles with extrapolated guesses, multiple-time-step speed-up.

    python benchmarks/md_integrators.py            # ~40 min on 2 cores; appends to benchmarks/RESULTS.md
    python benchmarks/md_integrators.py --quick    # shorter runs, prints only

Systems (shipped data, tight SCF conv_tol = 1e-10 Eh, 300 K Maxwell-Boltzmann start, seed 1):
* water: one QM water (HF/6-31G*) in 19 waters of the shipped ML water model (a test-set cluster);
* sn2: Cl- + CH3Cl (HF/6-31G*, density fitting) in 41 ML waters, the README's main job system.

Measured, each in one run of this script:
1. NVE velocity Verlet 0.5 fs: drift (slope of a linear fit of total energy) in Eh/ps per atom,
   target < 2e-6, over 1 ps.
2. Mean SCF cycles per step with PySCF's default guess, the previous density, and the polynomial
   extrapolation of the last 5 densities (qmml's default), over the same steps from the same start;
   target: extrapolated <= half of the default guess, at equal drift.  PySCF's count; each SCF also
   builds two more Fock matrices (initial guess energy, final convergence check), reported too.
3. r-RESPA, outer 2 fs / inner 0.5 fs, fast force = `qmml.MLReference` (the same Hamiltonian with
   the QM region described by the shipped `organic` model, whole committee): drift over 2 ps, and wall
   time per simulated ps relative to velocity Verlet at 0.5 fs; target < 1/3.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

import qmml
from qmml import units
from qmml.md import read_thermo
from qmml.ml import Dataset

ROOT = Path(__file__).resolve().parents[1]


def water_system():
    frame = next(f for f in Dataset.load(ROOT / "data/datasets/water_test.npz")
                 if f.cell is None and len(f.elements) == 60)
    system = frame.to_system("WAT")
    return system, np.where(system.resids == 1)[0], 0, False


def sn2_system():
    system = qmml.load_system(ROOT / "data/structures/sn2_water.psf", ROOT / "data/structures/sn2_water.pdb")
    return system, "resname CLA MCL", -1, True


SYSTEMS = {"water": water_system, "sn2": sn2_system}


def simulate(name, integrator, n_steps, guess="extrapolate"):
    system, qm, charge, density_fit = SYSTEMS[name]()
    part = qmml.partition(system, qm, charge=charge, boundary="none")
    engine = qmml.PySCFEngine("hf", "6-31g*", conv_tol=1e-10, density_fit=density_fit, guess=guess)
    ham = qmml.Hamiltonian(part, engine, qmml.load_model("water"))
    if integrator == "mts":
        integ = qmml.MultipleTimeStep(2.0, 4, qmml.MLReference(ham, qmml.load_model("organic")))
    else:
        integ = qmml.VelocityVerlet(0.5)
    with tempfile.TemporaryDirectory() as tmp:
        sim = qmml.Simulation(ham, integ, reporters=[qmml.ThermoLog(Path(tmp) / "thermo.csv", plot=False)],
                              temperature_K=300, seed=1, progress=False)
        start = time.perf_counter()
        sim.run(n_steps)
        wall = time.perf_counter() - start
        log = read_thermo(Path(tmp) / "thermo.csv")
    t_ps = log["time_fs"] / 1000
    slope = np.polyfit(t_ps, log["total_eV"], 1)[0]
    out = {"system": name, "integrator": integrator, "guess": guess, "steps": n_steps,
           "ps": float(t_ps[-1]), "wall_per_ps": wall / t_ps[-1],
           "drift": abs(slope) / units.HARTREE_EV / system.n_atoms, "scf": float(np.mean(log["scf_cycles"][1:])),
           "fluctuation_eV": float(np.std(log["total_eV"])), "n_atoms": system.n_atoms,
           "mean_T": float(np.mean(log["temperature_K"]))}
    print(f"  {name:5s} {integrator:4s} guess={guess:8s} {t_ps[-1]:.3f} ps: drift {out['drift']:.2e} Eh/ps/atom, "
          f"SCF cycles {out['scf']:.2f}, {out['wall_per_ps']:.0f} s per ps, mean T {out['mean_T']:.0f} K",
          flush=True)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="short runs, no RESULTS.md entry")
    args = parser.parse_args()
    torch.set_num_threads(2)
    q = args.quick
    rows = []
    print("1. NVE drift (velocity Verlet 0.5 fs, extrapolated guess)", flush=True)
    rows.append(simulate("water", "vv", 200 if q else 2000))
    print("2. SCF guess (velocity Verlet 0.5 fs, same start)", flush=True)
    n_guess = 40 if q else 200
    guesses = {g: simulate("sn2", "vv", n_guess, guess=g) for g in ("default", "previous", "extrapolate")}
    rows += guesses.values()
    print("3. r-RESPA 2 fs / 0.5 fs vs velocity Verlet 0.5 fs", flush=True)
    mts = simulate("sn2", "mts", 25 if q else 1000)
    mts_water = simulate("water", "mts", 50 if q else 500)
    rows += [mts, mts_water]
    vv_sn2 = guesses["extrapolate"]
    vv_water = rows[0]
    ratio_sn2 = mts["wall_per_ps"] / vv_sn2["wall_per_ps"]
    ratio_water = mts_water["wall_per_ps"] / vv_water["wall_per_ps"]
    halving = guesses["extrapolate"]["scf"] / guesses["default"]["scf"]
    fock = (guesses["extrapolate"]["scf"] + 2) / (guesses["default"]["scf"] + 2)
    summary = [
        f"NVE drift, water, velocity Verlet 0.5 fs, {vv_water['ps']:.2f} ps: {vv_water['drift']:.2e} Eh/ps/atom "
        f"(target < 2e-6)",
        f"SCF cycles per step, sn2: default guess {guesses['default']['scf']:.2f}, previous density "
        f"{guesses['previous']['scf']:.2f}, extrapolated {guesses['extrapolate']['scf']:.2f}; extrapolated / default "
        f"= {halving:.2f} (target <= 0.5; Fock builds incl. PySCF's initial and check cycles: {fock:.2f}); drifts "
        f"{guesses['default']['drift']:.1e} / {guesses['previous']['drift']:.1e} / "
        f"{guesses['extrapolate']['drift']:.1e} Eh/ps/atom",
        f"r-RESPA 2/0.5 fs, sn2: drift {mts['drift']:.2e} Eh/ps/atom over {mts['ps']:.2f} ps; cost per ps "
        f"{ratio_sn2:.2f} x velocity Verlet 0.5 fs (target < 0.33)",
        f"r-RESPA 2/0.5 fs, water (cheap QM: one water, HF/6-31G*): drift {mts_water['drift']:.2e} Eh/ps/atom over "
        f"{mts_water['ps']:.2f} ps; cost per ps {ratio_water:.2f} x velocity Verlet 0.5 fs",
    ]
    print("\n".join(summary))
    if args.quick:
        return
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, Python {platform.python_version()}"
    lines = [f"\n## MD integrators and SCF guess ({date.today()}, {machine})\n",
             "HF/6-31G* QM region in the shipped ML water model, conv_tol 1e-10 Eh, 300 K start. "
             "`python benchmarks/md_integrators.py`.\n",
             "| system | atoms | integrator | guess | simulated (ps) | drift (Eh/ps/atom) | SCF cycles/step | "
             "wall s per ps | mean T (K) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['system']} | {r['n_atoms']} | {r['integrator']} | {r['guess']} | {r['ps']:.3f} | "
                     f"{r['drift']:.2e} | {r['scf']:.2f} | {r['wall_per_ps']:.0f} | {r['mean_T']:.0f} |")
    lines += [""] + [f"- {s}" for s in summary] + [""]
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as handle:
        handle.write("\n".join(lines) + "\n")
    print("appended to benchmarks/RESULTS.md")


if __name__ == "__main__":
    sys.exit(main())
