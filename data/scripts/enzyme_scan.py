"""Restrained scan of the Claisen rearrangement of chorismate in chorismate mutase, three layers (QM/ML/MM).

The structure and layers are those of ``data/examples/enzyme_qm_ml_mm.yaml`` (BsCM, 43,048 atoms, PME), with
the QM region chorismate alone (charge -2), as in the B3LYP/6-31G(d)/CHARMM27 paths of Claeyssens et al.,
Org. Biomol. Chem. 2011, 9, 1578 (average enzyme barrier 11.3 kcal/mol).  The ML shell (every residue within
6 Å, `organic`, additive scheme: the model does not see chorismate, QM-shell contacts are the Lennard-Jones
term) holds Arg90, Arg7, Glu78, Tyr108, Arg63 ...; the MM layer (amber14) the rest.

Reaction coordinate RC = d(C5-O7) - d(C1-C9) (the breaking ether bond minus the forming C-C bond; reactant
-1.6 Å, product about +1.5 Å).  Three stages, each point its own file in ``data/validation/enzyme_scan/`` so
a stopped campaign continues where it ended:

1. ``path_NN.npz``: adiabatic mapping at the path level (default HF/STO-3G with density fitting): at each RC
   target in turn, an L-BFGS optimization of the QM atoms (shell and MM fixed) under a harmonic restraint
   on RC, started from the previous point.  Stored: the QM positions, RC, the unrestrained energy.  The
   geometry of every step goes to ``path_NN.partial.npz``, so a point stopped halfway continues there.
2. ``single_point_NN.json``: the energy at each path geometry at the reference level (default
   B3LYP/6-31G*, density fitting), without forces.
3. ``gas_phase_NN.json``: chorismate alone (no enzyme, no solvent) at the same geometry and level.  The
   enzyme profile minus this one is what the environment does to the barrier, the differential transition-
   state stabilization, which depends less on the path level than the barrier itself (published: 7.3
   kcal/mol on average in BsCM, Claeyssens et al. 2011).

``--stage all`` (the default) takes the three stages point by point, so a campaign that spans sessions has a
profile so far; the structure, partition and layers are built once and shared by the stages' Hamiltonians.

    OMP_NUM_THREADS=2 python data/scripts/enzyme_scan.py --threads 1      # all stages, resumable
    python data/scripts/enzyme_scan.py --analyse                          # the profile and the barrier
    python data/scripts/enzyme_scan.py --path-basis 6-31g* --out data/validation/enzyme_scan_hf_631gs
    python data/scripts/enzyme_scan.py --relax-shell --out data/validation/enzyme_scan_relaxed_shell
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "data" / "validation" / "enzyme_scan"
TARGETS_A = (-1.6, -1.2, -0.8, -0.5, -0.2, 0.1, 0.4, 0.7, 1.0, 1.4)
#: restraint force constant, eV/Å² (about 1150 kcal/mol/Å²: RC within 0.01 Å of its target)
FORCE_CONSTANT = 50.0


@functools.lru_cache(maxsize=None)
def layers(threads: int | None):
    """The partition (QM chorismate, 6 Å ML shell) and its three-layer environment, built once per process."""
    import qmml

    ff = qmml.MMForceField.from_pdb(ROOT / "data" / "structures" / "chorismate_mutase.pdb")
    part = qmml.partition(ff.system, "resname CHM", charge=-2, shell_radius_A=6.0)
    return part, qmml.LayeredEnvironment(qmml.load_model("organic"), ff, threads=threads, stress=False)


def hamiltonian(method: str, basis: str, threads: int | None):
    import qmml

    part, environment = layers(threads)
    engine = qmml.PySCFEngine(method, basis, density_fit=True, conv_tol=1e-8, near_field_A=18.0)
    # additive: chorismate is not bonded to the protein, and the model (never trained on chorismate) must not act
    # on the QM atoms; in the subtractive scheme an optimization ran down 4.3 eV in 35 steps on the model's term
    return qmml.Hamiltonian(part, engine, environment, scheme="additive")


def coordinate(system):
    from qmml.sampling.colvars import DistanceDifference

    def atom(name):
        return int(system.select(f"resname CHM and name {name}")[0])

    return DistanceDifference((atom("C5"), atom("O7")), (atom("C1"), atom("C9")), name="RC")


def _write_json(target: Path, data: dict) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(target)


def _moved(positions, qm, shell) -> dict:
    """The arrays a point stores: the QM positions, and the shell's when it moves too."""
    return {"qm_positions": positions[qm]} | ({"shell_positions": positions[shell]} if shell is not None else {})


def _apply(x, header, arrays, qm=None) -> None:
    """Put a stored point's QM (and shell) positions into ``x`` (``qm``: for files that do not name them)."""
    x[header.get("qm_atoms", qm)] = arrays["qm_positions"]
    if "shell_positions" in arrays:
        x[header["shell_atoms"]] = arrays["shell_positions"]


def _todo(out: Path, prefix: str) -> list[Path]:
    """The path points without a ``prefix_NN.json`` yet."""
    return [p for p in sorted(out.glob("path_[0-9][0-9].npz"))
            if not (out / p.name.replace("path_", f"{prefix}_").replace(".npz", ".json")).exists()]


def path_stage(args, max_new: int | None = None) -> bool:
    """Path points in order (the first ``max_new`` missing ones; all by default); True when every point exists."""
    import qmml
    from qmml.header_npz import read_header_npz, write_header_npz

    out = args.out
    ham = hamiltonian(args.path_method, args.path_basis, args.threads)
    system, qm = ham.system, ham.partition.qm_atoms
    rc = coordinate(system)
    x = system.positions.copy()
    fixed = np.ones(system.n_atoms, dtype=bool)
    fixed[qm] = False
    shell = ham.partition.shell_atoms if args.relax_shell else None
    if shell is not None:  # the ML shell follows the reaction too (induced fit); the MM layer stays
        fixed[shell] = False
    new = 0
    for k, target in enumerate(TARGETS_A):
        path = out / f"path_{k:02d}.npz"
        partial = out / f"path_{k:02d}.partial.npz"
        if path.exists():
            header, arrays = read_header_npz(path, "enzyme scan point")
            _apply(x, header, arrays)
            continue
        if max_new is not None and new == max_new:
            return False
        new += 1
        done = {"steps": 0, "seconds": 0.0}
        if partial.exists():  # a point a stopped session left half done: continue from its last step
            done, arrays = read_header_npz(partial, "enzyme scan point in progress")
            _apply(x, done, arrays, qm)
            print(f"path {k:2d}: continuing after {done['steps']} steps", flush=True)
        clock = time.perf_counter()

        def save_step(step, positions, result, done=done, partial=partial, clock=clock):
            write_header_npz(partial, {"steps": done["steps"] + step, "qm_atoms": qm.tolist(), "shell_atoms":
                                       None if shell is None else shell.tolist(),
                                       "seconds": done["seconds"] + time.perf_counter() - clock},
                             _moved(positions, qm, shell))

        restrained = qmml.Restrained(ham, [qmml.HarmonicRestraint(rc, target, FORCE_CONSTANT)])
        opt = qmml.optimize(restrained, x, fmax=args.fmax, max_steps=max(1, args.max_steps - done["steps"]),
                            fixed=fixed, progress=True, callback=save_step)
        x = opt.positions
        value = rc.value(x)
        energy = opt.energy - 0.5 * FORCE_CONSTANT * (value - target) ** 2
        header = {"target_A": target, "rc_A": value, "energy_eV": energy, "method": args.path_method,
                  "basis": args.path_basis, "converged": bool(opt.converged), "max_force_eV_A": opt.max_force,
                  "steps": done["steps"] + opt.n_steps, "evaluations": opt.n_evaluations,
                  "seconds": done["seconds"] + time.perf_counter() - clock, "qm_atoms": qm.tolist(),
                  "shell_atoms": None if shell is None else shell.tolist()}
        write_header_npz(path, header, _moved(x, qm, shell))
        partial.unlink(missing_ok=True)
        print(f"path {k:2d}: RC {value:+.3f} Å (target {target:+.2f}), E {energy:.4f} eV, {header['steps']} steps, "
              f"max force {opt.max_force:.3f} eV/Å, {header['seconds']:.0f} s", flush=True)
    return True


def single_point_stage(args) -> None:
    from qmml.header_npz import read_header_npz

    todo = _todo(args.out, "single_point")
    if not todo:
        return
    ham = hamiltonian(args.method, args.basis, args.threads)
    x = ham.system.positions.copy()
    for path in todo:
        header, arrays = read_header_npz(path, "enzyme scan point")
        _apply(x, header, arrays)
        clock = time.perf_counter()
        result = ham.compute(x, forces=False)
        _write_json(args.out / path.name.replace("path_", "single_point_").replace(".npz", ".json"),
                    {"target_A": header["target_A"], "rc_A": header["rc_A"], "energy_eV": result.energy,
                     "qm_energy_eV": result.qm_energy, "method": args.method, "basis": args.basis,
                     "scf_cycles": result.scf_cycles, "seconds": time.perf_counter() - clock})
        print(f"single point {path.stem}: E {result.energy:.4f} eV ({time.perf_counter() - clock:.0f} s)", flush=True)


def gas_phase_stage(args) -> None:
    import qmml
    from qmml.header_npz import read_header_npz

    todo = _todo(args.out, "gas_phase")
    if not todo:
        return
    system = layers(args.threads)[0].system
    engine = qmml.PySCFEngine(args.method, args.basis, density_fit=True, conv_tol=1e-8)
    for path in todo:
        header, arrays = read_header_npz(path, "enzyme scan point")
        clock = time.perf_counter()
        result = engine.compute(system.elements[header["qm_atoms"]], arrays["qm_positions"], charge=-2, forces=False)
        _write_json(args.out / path.name.replace("path_", "gas_phase_").replace(".npz", ".json"),
                    {"target_A": header["target_A"], "rc_A": header["rc_A"], "energy_eV": result.energy,
                     "method": args.method, "basis": args.basis, "seconds": time.perf_counter() - clock})
        print(f"gas phase {path.stem}: E {result.energy:.4f} eV ({time.perf_counter() - clock:.0f} s)", flush=True)


def profile(directory=OUT) -> list[dict]:
    """The scan as rows: RC (Å); the path, single-point and gas-phase energies relative to the first point
    (``*_kcal``, kcal/mol; None where a stage has not reached the point)."""
    from qmml import units
    from qmml.header_npz import read_header_npz

    def stage(path, prefix):
        single = Path(directory) / path.name.replace("path_", f"{prefix}_").replace(".npz", ".json")
        return json.loads(single.read_text()) if single.exists() else None

    rows = []
    for path in sorted(Path(directory).glob("path_[0-9][0-9].npz")):
        header, _ = read_header_npz(path, "enzyme scan point")
        sp, gas = stage(path, "single_point"), stage(path, "gas_phase")
        rows.append({"rc_A": header["rc_A"], "path_eV": header["energy_eV"], "converged": header["converged"],
                     "single_point_eV": None if sp is None else sp["energy_eV"],
                     "gas_phase_eV": None if gas is None else gas["energy_eV"],
                     "path_level": f"{header['method']}/{header['basis']}",
                     "single_point_level": None if sp is None else f"{sp['method']}/{sp['basis']}"})
    for key in ("path_eV", "single_point_eV", "gas_phase_eV"):
        first = rows[0][key] if rows else None
        for r in rows:
            r[key.replace("_eV", "_kcal")] = None if r[key] is None or first is None else (r[key] - first) / units.KCAL_PER_MOL_EV
    return rows


def analyse(directory=OUT) -> None:
    rows = profile(directory)
    if not rows:
        print(f"no scan points in {directory}; run the scan first")
        return

    def cell(value, width):
        return f"{'' if value is None else f'{value:.2f}':>{width}}"

    print(f"{'RC (Å)':>8} {'path':>8} {'enzyme':>8} {'gas':>8} {'enzyme-gas':>10}  converged   (kcal/mol)")
    for r in rows:
        sp, gas = r["single_point_kcal"], r["gas_phase_kcal"]
        print(f"{r['rc_A']:8.3f} {cell(r['path_kcal'], 8)} {cell(sp, 8)} {cell(gas, 8)} "
              f"{cell(None if sp is None or gas is None else sp - gas, 10)}  {r['converged']}")
    print(f"path level {rows[0]['path_level']}; enzyme and gas phase at {rows[0]['single_point_level']}")
    done = [r for r in rows if r["single_point_kcal"] is not None]
    if done:
        top = max(done, key=lambda r: r["single_point_kcal"])
        line = f"highest enzyme point: {top['single_point_kcal']:.1f} kcal/mol at RC {top['rc_A']:+.2f} Å"
        if top["gas_phase_kcal"] is not None:
            change = top["single_point_kcal"] - top["gas_phase_kcal"]
            line += (f"; there the environment {'raises' if change > 0 else 'lowers'} it by {abs(change):.1f} "
                     "kcal/mol against the gas phase")
        print(line)
    print("published (Claeyssens et al., Org. Biomol. Chem. 2011, 9, 1578; B3LYP/6-31G(d)/CHARMM27, average over "
          "paths): barrier 11.3 kcal/mol, differential TS stabilization 7.3 kcal/mol; experiment dH‡ 12.7 kcal/mol")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--analyse", action="store_true", help="print the profile and stop")
    parser.add_argument("--stage", choices=("path", "single_points", "gas_phase", "all"), default="all")
    parser.add_argument("--path-method", default="hf")
    parser.add_argument("--path-basis", default="sto-3g")
    parser.add_argument("--method", default="b3lyp", help="single-point method")
    parser.add_argument("--basis", default="6-31g*", help="single-point basis")
    parser.add_argument("--fmax", type=float, default=0.1, help="optimization threshold, eV/Å")
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=None, help="OpenMM CPU threads")
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the campaign's files")
    parser.add_argument("--relax-shell", action="store_true",
                        help="optimize the ML shell with the QM atoms (default: QM atoms only)")
    args = parser.parse_args(argv)
    if args.analyse:
        analyse(args.out)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage == "all":  # point by point, so that a campaign spread over sessions has a profile as it goes
        while True:
            done = path_stage(args, max_new=1)
            single_point_stage(args)
            gas_phase_stage(args)
            if done:
                break
    elif args.stage == "path":
        path_stage(args)
    elif args.stage == "single_points":
        single_point_stage(args)
    else:
        gas_phase_stage(args)
    analyse(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
