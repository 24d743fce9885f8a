"""The bulk modulus of a Lennard-Jones liquid by three routes, against the equation of state it must satisfy.

    python data/scripts/bulk_modulus_routes.py            # writes data/validation/bulk_modulus_lj/summary.json
    python data/scripts/bulk_modulus_routes.py --quick    # a short run to try it

System: 108 argon atoms, the test suite's Lennard-Jones potential (tests/test_npt.py: switched at 2.0 sigma,
mean-field tail beyond, so its equation of state is the full fluid's), at T* = 2.0 and rho* = 0.7.  Routes:

1. finite strain: the NVT-averaged pressure (virial plus kinetic) at volumetric strains of +-2 %, K = -V dP/dV
   (`qmml.analysis.elastic` does this statically for solids; a liquid needs the thermal average);
2. equation of state: the averaged pressure at five volumes (+-4 %) fitted with the third-order Birch-Murnaghan
   P(V), K = -V dP/dV of the fit at rho* = 0.7;
3. volume fluctuations of an NPT run at the equation of state's pressure
   (`qmml.analysis.bulk_modulus_from_volume_fluctuations`).

Errors: standard errors over 10 consecutive blocks of every run (each route's estimate repeated per block).
Reference: K = rho dP/drho of the Johnson-Zollweg-Gubbins equation of state (Mol. Phys. 78, 591 (1993)).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import qmml  # noqa: E402
from qmml import units  # noqa: E402
from qmml.analysis import bulk_modulus_from_volume_fluctuations  # noqa: E402
from qmml.md import StochasticCellRescaling  # noqa: E402
from test_npt import (LJ_PRESSURE_BAR, RHO_STAR, SIGMA_A, T_STAR, TEMPERATURE_K, LennardJonesArgon,  # noqa: E402
                      argon_fcc, jzg_pressure, npt_conditions)

BLOCKS = 10
GPA_PER_BAR = units.BAR_EV_PER_A3 * units.EV_PER_A3_GPA


def melted(density, steps, seed):
    """A 108-atom fluid at ``density`` after ``steps`` of 10 fs Langevin from fcc."""
    lj = LennardJonesArgon(argon_fcc(density))
    sim = qmml.Simulation(lj, qmml.Langevin(10.0, TEMPERATURE_K, friction_per_ps=20.0, seed=seed),
                          temperature_K=TEMPERATURE_K, seed=seed, progress=False).run(steps)
    return lj, sim


def nvt_pressures(density, steps, skip, seed):
    """Instantaneous pressures (virial + kinetic, GPa) along an NVT run at ``density``, and the volume (Å^3)."""
    lj, melt = melted(density, 300, seed)
    integrator = qmml.Langevin(10.0, TEMPERATURE_K, friction_per_ps=5.0, seed=seed)
    sim = qmml.Simulation(lj, integrator, positions=melt.state.positions, velocities=melt.state.velocities,
                          progress=False)
    volume = abs(np.linalg.det(lj.system.cell))
    pressures = []
    for k in range(steps):
        sim.state = integrator.step(lj, sim.state, sim.masses)
        if k >= skip:
            kinetic = 2.0 * sim.kinetic_energy(sim.state) / 3.0 / volume
            pressures.append((kinetic - np.trace(sim.state.result.stress) / 3.0) * units.EV_PER_A3_GPA)
    return np.array(pressures), volume


def birch_murnaghan_pressure(v, v0, k0, k1):
    x = np.cbrt(v0 / v)
    return 1.5 * k0 * (x ** 7 - x ** 5) * (1 + 0.75 * (k1 - 4) * (x * x - 1))


def bm_modulus(volumes, pressures, at_volume):
    """K = -V dP/dV at ``at_volume`` of the Birch-Murnaghan fit of P(V) (GPa)."""
    from scipy.optimize import curve_fit

    guess = (at_volume * 1.3, 0.1, 6.0)
    (v0, k0, k1), _ = curve_fit(birch_murnaghan_pressure, volumes, pressures, p0=guess, maxfev=20000)
    h = 1e-4 * at_volume
    slope = (birch_murnaghan_pressure(at_volume + h, v0, k0, k1) - birch_murnaghan_pressure(at_volume - h, v0, k0, k1))
    return -at_volume * slope / (2 * h)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, not written")
    args = parser.parse_args(argv)
    nvt_steps, npt_steps, skip = (1500, 3000, 300) if args.quick else (40000, 150000, 2000)

    dp_drho = (jzg_pressure(RHO_STAR + 1e-5, T_STAR) - jzg_pressure(RHO_STAR - 1e-5, T_STAR)) / 2e-5
    reference = RHO_STAR * dp_drho * LJ_PRESSURE_BAR * GPA_PER_BAR
    strains = (-0.04, -0.02, 0.0, 0.02, 0.04)
    runs = {}
    for k, s in enumerate(strains):
        p, v = nvt_pressures(RHO_STAR / (1 + s), nvt_steps, skip, seed=11 + k)
        runs[s] = (v, p)
        print(f"NVT at V0 (1 {s:+.2f}): <P> = {p.mean():.5f} GPa ({len(p)} samples)", flush=True)
    v0 = runs[0.0][0]

    def per_block(values):
        return [b.mean() for b in np.array_split(values, BLOCKS)]

    blocks = {s: per_block(p) for s, (v, p) in runs.items()}
    strain_route = [-v0 * (blocks[0.02][b] - blocks[-0.02][b]) / (runs[0.02][0] - runs[-0.02][0]) for b in range(BLOCKS)]
    volumes = np.array([runs[s][0] for s in strains])
    eos_route = [bm_modulus(volumes, np.array([blocks[s][b] for s in strains]), v0) for b in range(BLOCKS)]
    eos_all = bm_modulus(volumes, np.array([runs[s][1].mean() for s in strains]), v0)

    pressure_bar, kappa_per_bar = npt_conditions()
    lj, melt = melted(RHO_STAR, 300, seed=5)
    integrator = qmml.Langevin(10.0, TEMPERATURE_K, friction_per_ps=5.0, seed=5,
                               barostat=StochasticCellRescaling(pressure_bar, kappa_per_bar, 150.0))
    sim = qmml.Simulation(lj, integrator, positions=melt.state.positions, velocities=melt.state.velocities,
                          progress=False)
    volumes_npt = []
    for k in range(npt_steps):
        sim.state = integrator.step(lj, sim.state, sim.masses)
        if k >= skip:
            volumes_npt.append(abs(np.linalg.det(sim.state.cell)))
    fluctuation, fluctuation_error = bulk_modulus_from_volume_fluctuations(np.array(volumes_npt), TEMPERATURE_K,
                                                                           blocks=BLOCKS)

    def summary(values, whole=None):
        values = np.array(values)
        return {"K_GPa": float(values.mean() if whole is None else whole),
                "error_GPa": float(values.std(ddof=1) / np.sqrt(len(values)))}

    result = {"system": "108 Lennard-Jones argon atoms, T* 2.0, rho* 0.7 (tests/test_npt.py potential)",
              "reference_jzg_GPa": float(reference),
              "finite_strain": summary(strain_route),
              "equation_of_state": summary(eos_route, eos_all),
              "volume_fluctuations": {"K_GPa": fluctuation, "error_GPa": fluctuation_error},
              "steps": {"nvt_per_volume": nvt_steps, "npt": npt_steps, "skipped": skip, "timestep_fs": 10.0}}
    for name in ("finite_strain", "equation_of_state", "volume_fluctuations"):
        r = result[name]
        r["deviation_in_errors"] = float((r["K_GPa"] - reference) / r["error_GPa"])
        print(f"{name}: K = {r['K_GPa']:.4f} +- {r['error_GPa']:.4f} GPa "
              f"({r['deviation_in_errors']:+.1f} sigma from the JZG {reference:.4f} GPa)")
    if not args.quick:
        out = ROOT / "data" / "validation" / "bulk_modulus_lj" / "summary.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
