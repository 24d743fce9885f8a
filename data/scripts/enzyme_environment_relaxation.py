r"""Does relaxing the environment at each scan point lower the chorismate mutase barrier?

At each stored point of a scan campaign (``--scan``; default ``data/validation/enzyme_scan/``, the HF/STO-3G path):

1. RESP charges of chorismate alone (B3LYP/6-31G*, restrained, total -2) at that geometry;
2. the residues of the ML shell (441 atoms, whole residues within 6 Å of chorismate) minimized in amber14 with
   OpenMM, everything else fixed, chorismate frozen with those charges and the temporary Lennard-Jones
   parameters of ``prepare_chorismate_mutase.py`` (a classical stand-in for microiterations: no SCF, no
   collapse of polar hydrogens, which a point-charge surrogate on the ML shell showed);
3. B3LYP/6-31G* single points: QM/MM with the force field's charges (no ML shell) in the frozen and in the
   relaxed environment, and the three layers in the relaxed one.

Each point is one ``point_NN.json`` (energies in eV, the RESP charges, how far the shell moved) plus
``shell_NN.npz`` (the relaxed shell positions, Å) in ``data/validation/enzyme_environment_relaxation/``;
points already there are skipped, so the campaign resumes.  About 6 minutes per point on one core.

    OMP_NUM_THREADS=1 python data/scripts/enzyme_environment_relaxation.py 0 4    # the points to compute
    python data/scripts/enzyme_environment_relaxation.py --analyse
    python data/scripts/enzyme_environment_relaxation.py 0 4 --scan data/validation/enzyme_scan_b3lyp \
        --out data/validation/enzyme_environment_relaxation_b3lyp
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import enzyme_scan as es  # noqa: E402

OUT = es.ROOT / "data" / "validation" / "enzyme_environment_relaxation"
PDB = es.ROOT / "data" / "structures" / "chorismate_mutase.pdb"


def relax_points(points, out: Path = OUT, scan: Path = es.OUT) -> None:
    import prepare_chorismate_mutase as prep
    from openmm import Context, LocalEnergyMinimizer, NonbondedForce, Platform, VerletIntegrator, app, unit

    import qmml
    from qmml.elements import ATOMIC_NUMBERS
    from qmml.header_npz import read_header_npz
    from qmml.ml.labelling import esp_grid, resp_charges

    out.mkdir(parents=True, exist_ok=True)
    part3, _ = es.layers(1)
    ham3 = es.hamiltonian("b3lyp", "6-31g*", 1)
    system = part3.system
    ff = qmml.MMForceField.from_pdb(PDB)
    engine = qmml.PySCFEngine("b3lyp", "6-31g*", density_fit=True, conv_tol=1e-8, near_field_A=18.0)
    ham_mm = qmml.Hamiltonian(qmml.partition(ff.system, "resname CHM", charge=-2), engine,
                              qmml.MMEnvironment(ff, threads=1, stress=False))
    gas = qmml.PySCFEngine("b3lyp", "6-31g*", density_fit=True, conv_tol=1e-8)

    pdb = app.PDBFile(str(PDB))
    ligand = [r for r in pdb.topology.residues() if r.name == "CHM"][0]
    chm = [a.index for a in ligand.atoms()]
    assert np.array_equal(chm, part3.qm_atoms)
    atoms = [(a.name, a.element.symbol, None) for a in ligand.atoms()]
    bonds = [(b[0].name, b[1].name) for b in pdb.topology.bonds() if b[0].residue is ligand and b[1].residue is ligand]
    ligand_xml = io.StringIO(prep.temp_ligand_ffxml(atoms, bonds))
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml", ligand_xml)
    omm = forcefield.createSystem(pdb.topology, nonbondedMethod=app.PME, nonbondedCutoff=1.0 * unit.nanometer,
                                  constraints=None, rigidWater=False, removeCMMotion=False)
    moving = part3.shell_atoms
    still = np.setdiff1d(np.arange(system.n_atoms), moving)
    for i in still:
        omm.setParticleMass(int(i), 0.0)
    nonbonded = [f for f in omm.getForces() if isinstance(f, NonbondedForce)][0]
    numbers = [ATOMIC_NUMBERS[e] for e in system.elements[chm]]

    for k in points:
        target = out / f"point_{k:02d}.json"
        if target.exists():
            continue
        clock = time.perf_counter()
        header, arrays = read_header_npz(scan / f"path_{k:02d}.npz", "enzyme scan point")
        x = system.positions.copy()
        x[header["qm_atoms"]] = arrays["qm_positions"]
        grid = esp_grid(numbers, x[chm])
        alone = gas.compute(system.elements[chm], x[chm], charge=-2, forces=False, probe_positions=grid)
        charges = resp_charges(numbers, x[chm], grid, alone.probe_potential, molecule_charges=[-2])
        for i, q in zip(chm, charges):
            _, sigma, epsilon = nonbonded.getParticleParameters(int(i))
            nonbonded.setParticleParameters(int(i), q, sigma, epsilon)
        context = Context(omm, VerletIntegrator(0.001), Platform.getPlatformByName("CPU"), {"Threads": "1"})
        context.setPeriodicBoxVectors(*pdb.topology.getPeriodicBoxVectors())
        context.setPositions(x * unit.angstrom)
        before = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        LocalEnergyMinimizer.minimize(context, 1.0, 0)
        state = context.getState(getEnergy=True, getPositions=True)
        relaxed = np.array(state.getPositions(asNumpy=True).value_in_unit(unit.angstrom))
        relaxed[still] = x[still]  # exactly where they were (the context wraps nothing, but rounds through nm)
        after = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        shift = np.linalg.norm(relaxed[moving] - x[moving], axis=1)
        row = {"rc_A": header["rc_A"], "resp": charges.tolist(), "mm_drop_kJ_mol": before - after,
               "max_shift_A": float(shift.max()), "rms_shift_A": float(np.sqrt(np.mean(shift**2))),
               "qmmm_frozen_eV": ham_mm.compute(x, forces=False).energy,
               "qmmm_relaxed_eV": ham_mm.compute(relaxed, forces=False).energy,
               "three_layers_relaxed_eV": ham3.compute(relaxed, forces=False).energy}
        row["seconds"] = time.perf_counter() - clock
        np.savez(out / f"shell_{k:02d}.npz", shell=relaxed[moving])
        target.write_text(json.dumps(row, indent=1))
        print(f"point {k}: shell moved by up to {shift.max():.2f} Å; {row['seconds']:.0f} s", flush=True)


def analyse(out: Path = OUT, scan: Path = es.OUT) -> None:
    from qmml import units

    rows = {int(p.stem[-2:]): json.loads(p.read_text()) for p in sorted(out.glob("point_[0-9][0-9].json"))}
    if 0 not in rows:
        print("no point 0 yet: the energies are relative to it")
        return
    frozen3 = {r["rc_A"]: r for r in es.profile(scan)}  # the scan's own single points
    print("  RC (Å)  QM/MM frozen  QM/MM relaxed  3 layers frozen  3 layers relaxed   gas   (kcal/mol)")
    ref = rows[0]
    for row in rows.values():
        scan = frozen3[row["rc_A"]]
        kcal = {key: (row[key] - ref[key]) / units.KCAL_PER_MOL_EV
                for key in ("qmmm_frozen_eV", "qmmm_relaxed_eV", "three_layers_relaxed_eV")}
        print(f"  {row['rc_A']:+.3f}  {kcal['qmmm_frozen_eV']:12.2f}  {kcal['qmmm_relaxed_eV']:13.2f}  "
              f"{scan['single_point_kcal']:15.2f}  {kcal['three_layers_relaxed_eV']:16.2f}  "
              f"{scan['gas_phase_kcal']:5.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("points", nargs="*", type=int, help="scan points to relax (indices of path_NN.npz)")
    parser.add_argument("--analyse", action="store_true", help="print the profiles and stop")
    parser.add_argument("--scan", type=Path, default=es.OUT, help="the scan campaign whose points are relaxed")
    parser.add_argument("--out", type=Path, default=OUT, help="folder of this campaign's files")
    args = parser.parse_args()
    if not args.analyse:
        relax_points(args.points, args.out, args.scan)
    analyse(args.out, args.scan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
