"""Command line: ``qmml run JOB.yaml``, ``qmml restart RUN_DIR``, ``qmml partition ...``, ``qmml train``, ``qmml model-info``,
``qmml ipi JOB.yaml --address NAME``.

Input errors print one line (file, key or atom, fix) and exit with status 2; nothing is overwritten.
Exit statuses are listed in `EXIT_STATUSES` (and ``qmml --help``).
"""

from __future__ import annotations

import argparse
import errno
import sys
import time
from pathlib import Path

import numpy as np

from .errors import QmmlError, UnstableDynamicsError

EXIT_FINISHED = 0
EXIT_INPUT_ERROR = 2
EXIT_UNSTABLE = 3
EXIT_STOPPED = 4
EXIT_INTERRUPTED = 130
EXIT_STATUSES = {
    EXIT_FINISHED: "finished",
    1: "an internal error (a traceback: please report it)",
    EXIT_INPUT_ERROR: "an input or file-system error the user can fix (one line naming the file, key or atom); "
                      "nothing was overwritten",
    EXIT_UNSTABLE: "MD stopped by its step guard (non-finite numbers, runaway temperature, an atom jumping, an "
                   "energy leak); the checkpoint holds the last good step",
    EXIT_STOPPED: "MD stopped before its last step by SIGTERM or the STOP file; continue with 'qmml restart'",
    EXIT_INTERRUPTED: "interrupted with Ctrl-C; an MD run's checkpoint holds its last completed step",
}
_OS_FIXES = {
    errno.EACCES: "check the permissions of the folder or file",
    errno.EPERM: "check the permissions of the folder or file",
    errno.EROFS: "the file system is read-only; write the run somewhere else",
    errno.ENOSPC: "the disk is full; free space, then continue with 'qmml restart RUN_DIR'",
    errno.EFBIG: "the file hit a file-size limit (ulimit -f, a quota or a full disk); raise it, then continue "
                 "with 'qmml restart RUN_DIR'",
    errno.EDQUOT: "the disk quota is used up; free space, then continue with 'qmml restart RUN_DIR'",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EISDIR: "the path is a folder, not a file; give a file",
    errno.EEXIST: "it already exists; move it away or choose another name",
}


def _one_line(message) -> str:
    """A message on one line: libraries' own messages (MDAnalysis, PySCF) may span several."""
    return " ".join(str(message).split())


def _os_error(err: OSError) -> str:
    where = f" {err.filename}" if err.filename else ""
    fix = _OS_FIXES.get(err.errno, "check the path and the file system")
    return f"cannot use{where}: {err.strerror or err}; {fix} (an MD run's checkpoint holds its last saved step)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="qmml", description="QM/ML multiscale simulation with PySCF and PyTorch.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status:\n" + "\n".join(f"  {code:3d}  {text}" for code, text in EXIT_STATUSES.items()))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser("run", help="run the job described by a YAML file (single point or MD)")
    run.add_argument("config", help="YAML job file (see data/examples/)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a setting of the file, e.g. --set md.steps=500 (repeatable)")
    restart = commands.add_parser("restart", help="continue an MD run from its checkpoint")
    restart.add_argument("run_dir", help="run folder written by 'qmml run'")
    restart.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="only md.steps=N (extend the run) and md.progress=false")
    restart.add_argument("--allow-changes", action="store_true",
                         help="continue although config.yaml, the structure or the model changed since the checkpoint "
                         "(the changes are recorded in config_history.yaml)")
    part = commands.add_parser("partition", help="print the QM/environment partition report of a structure")
    part.add_argument("structure", nargs="+", help="topology and/or coordinate files")
    part.add_argument("--qm", required=True, help="MDAnalysis selection of the QM atoms")
    part.add_argument("--charge", type=int, required=True, help="charge of the QM region (e)")
    part.add_argument("--multiplicity", type=int, default=1)
    part.add_argument("--boundary", default="rcd", help="boundary charge scheme (default rcd)")
    part.add_argument("--guess-bonds", action="store_true", help="guess bonds from distances")
    part.add_argument("--allow-polar-cuts", action="store_true", help="allow cutting bonds other than C-C")
    part.add_argument("--allow-multiple-bond-cuts", action="store_true", help="allow cutting double/aromatic bonds")
    part.add_argument("--allow-multiple-links", action="store_true",
                      help="allow more than one link atom on one QM atom")
    part.add_argument("--mm", action="store_true", help="read the structure with the amber14 force field (OpenMM): "
                      "bonds and charges from it, a ligand without parameters allowed in the QM region")
    part.add_argument("--shell-radius", type=float, default=None, metavar="A",
                      help="three layers: an ML shell of whole residues within this distance (Å) of the QM region")
    train = commands.add_parser("train", help="train an environment model (energy, forces, charges) on datasets")
    train.add_argument("config", help="YAML training file (see data/models/*.yaml)")
    info = commands.add_parser("model-info", help="print the header of a model file or shipped model")
    info.add_argument("model", help="model name (water, organic) or .pt path")
    ipi = commands.add_parser("ipi", help="serve the job's energies and forces to an i-PI server (path integrals)",
                              description="Build the potential of a YAML job file (structure, qm, environment, vdw; "
                              "task and md are ignored: i-PI moves the atoms) and serve it to i-PI over a socket "
                              "until i-PI sends EXIT.  See docs/interfaces.md.")
    ipi.add_argument("config", help="YAML job file (see data/examples/)")
    ipi.add_argument("--address", default="qmml",
                     help="i-PI's <address>: the unix socket name (default qmml) or, with --port, the host")
    ipi.add_argument("--port", type=int, default=None, help="TCP port of an inet socket (default: a unix socket)")
    ipi.add_argument("--sockets-prefix", default="/tmp/ipi_",
                     help="where i-PI puts unix sockets (default /tmp/ipi_, i-PI's own default)")
    ipi.add_argument("--connect-timeout", type=float, default=60.0, metavar="SECONDS",
                     help="how long to wait for i-PI to open the socket (default 60)")
    ipi.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a setting of the file, e.g. --set qm.basis=sto-3g (repeatable)")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args.config, args.overrides)
        if args.command == "restart":
            from .jobs import restart_md

            sim = restart_md(args.run_dir, args.overrides, allow_changes=args.allow_changes,
                             log=lambda text: print(text, flush=True))
            return EXIT_STOPPED if sim.stopped_by else EXIT_FINISHED
        if args.command == "train":
            return _train(args.config)
        if args.command == "model-info":
            return _model_info(args.model)
        if args.command == "ipi":
            return _ipi(args)
        return _partition(args)
    except UnstableDynamicsError as err:
        print(f"qmml: stopped: {_one_line(err)}", file=sys.stderr)
        return EXIT_UNSTABLE
    except QmmlError as err:
        print(f"qmml: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except OSError as err:  # permissions, a path that is a file, a full disk or a file-size limit
        print(f"qmml: error: {_one_line(_os_error(err))}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print("qmml: interrupted (an MD run's checkpoint holds its last completed step; continue with "
              "'qmml restart RUN_DIR')", file=sys.stderr)
        return EXIT_INTERRUPTED


def _partition(args) -> int:
    from .errors import InputError
    from .partition import partition
    from .system import load_system

    if args.mm:
        from .mm import MMForceField

        if len(args.structure) != 1:
            raise InputError(f"--mm reads one PDB/mmCIF file, not {args.structure}")
        forcefield = MMForceField.from_pdb(args.structure[0])
        system = forcefield.system
    else:
        system = load_system(*args.structure, guess_bonds=args.guess_bonds or None)
    part = partition(system, args.qm, charge=args.charge, multiplicity=args.multiplicity,
                     boundary=args.boundary, allow_polar_cuts=args.allow_polar_cuts,
                     allow_multiple_bond_cuts=args.allow_multiple_bond_cuts,
                     allow_multiple_links=args.allow_multiple_links, shell_radius_A=args.shell_radius)
    if args.mm:
        forcefield.check_parameterized(part.qm_atoms)
    print(part.report())
    return 0


def _run(config_path, overrides=()) -> int:
    from .config import load_config
    from .errors import InputError
    from .jobs import build_potential, describe_environment, start_md

    config, _ = load_config(config_path, overrides)
    if config.task == "md":
        sim = start_md(config, log=lambda text: print(text, flush=True))
        return EXIT_STOPPED if sim.stopped_by else EXIT_FINISHED
    if config.task == "elastic":
        return _elastic(config)
    output = None
    if config.output:
        output = Path(config.output)
        if output.exists():
            raise InputError(f"{config_path}: key 'output': {output} already exists and is never overwritten; "
                             "move it away or name another file")
    hamiltonian = build_potential(config)
    part = hamiltonian.partition
    print(part.report())
    what = describe_environment(config)
    print(f"\nSingle point: {hamiltonian.qm.method}/{config.qm.basis} QM region in {len(part.env_atoms)} "
          f"environment atoms ({what}) ...", flush=True)
    start = time.perf_counter()
    result = hamiltonian.compute(part.system.positions)
    elapsed = time.perf_counter() - start
    print(summary(part, result, elapsed))
    if output is not None:
        write_extxyz(output, part.system, result)
        print(f"\nwrote positions and forces to {output}")
    return 0


def _elastic(config) -> int:
    from .analysis import elastic_constants, equation_of_state
    from .analysis.elastic import VOIGT
    from .jobs import build_potential

    hamiltonian = build_potential(config)
    options = config.elastic
    print(hamiltonian.partition.report())
    kind = "relaxed-ion" if options.relax_ions else "clamped-ion"
    print(f"\nElastic constants ({kind}, strain +-{options.strain}) ...", flush=True)
    result = elastic_constants(hamiltonian, strain=options.strain, relax_ions=options.relax_ions, fmax=options.fmax)
    labels = ["".join("xyz"[k] for k in pair) for pair in VOIGT]
    print("C (GPa) " + "".join(f"{label:>10}" for label in labels))
    for label, row in zip(labels, result.matrix_GPa):
        print(f"{label:>7} " + "".join(f"{value:10.3f}" for value in row))
    print(f"bulk modulus (Voigt) {result.bulk_modulus_GPa:.3f} GPa, shear modulus (Voigt) "
          f"{result.shear_modulus_GPa:.3f} GPa; largest asymmetry {result.asymmetry_GPa:.1e} GPa; reference stress "
          f"up to {abs(result.stress_GPa).max():.3f} GPa")
    if options.equation_of_state:
        eos = equation_of_state(hamiltonian, volume_range=options.volume_range, points=options.points,
                                relax_ions=options.relax_ions, fmax=options.fmax)
        print(f"equation of state (Birch-Murnaghan, {options.points} volumes): B0 {eos.bulk_modulus_GPa:.3f} GPa, "
              f"B0' {eos.bulk_modulus_derivative:.2f}, V0 {eos.volume_A3:.2f} Å^3, rms residual "
              f"{eos.rms_residual_eV:.1e} eV")
    return 0


def _train(config_path) -> int:
    import json

    from .config import load_train_config
    from .errors import InputError
    from .ml import Dataset, TrainingOptions, evaluate, save_model, train

    config, root = load_train_config(config_path)
    output = root / config.output
    stem = output.with_suffix("")
    products = [output, output.with_suffix(".json"), Path(f"{stem}_history.csv"), Path(f"{stem}_learning_curve.png")]
    existing = [str(p) for p in products if p.exists()]
    if existing:
        raise InputError(f"{config_path}: key 'output': {', '.join(existing)} already exist and are never "
                         "overwritten; move them away or name another output")

    def load(key, paths):
        if not paths:
            return None
        try:  # a pattern names the chunk files of a labelling campaign (data/campaigns/NAME/labels/chunk_*.npz)
            return Dataset.load_many(paths, root)
        except InputError as err:
            raise InputError(f"{config_path}: key '{key}': {err}") from None

    train_set, validation_set, test_set = load("train", config.train), load("validation", config.validation), \
        load("test", config.test)
    references = {ds.metadata.get("reference", "unknown") for ds in (train_set, validation_set, test_set) if ds}
    if len(references) > 1:
        raise InputError(f"{config_path}: the datasets come from different reference methods {sorted(references)}; "
                         "train on one level of theory")
    opts = TrainingOptions(**config.model.model_dump(), **config.training.model_dump())
    opts.hidden = tuple(opts.hidden)
    print(f"training on {len(train_set)} frames ({train_set.n_atoms} atoms), reference {references.pop()}", flush=True)
    initial = None
    if config.initial is not None:
        from .ml import load_model

        name = config.initial
        initial = load_model(root / name if name.endswith(".pt") else name)
        old_reference = initial.header.get("reference")
        if opts.refit_energy_offsets is None and old_reference not in (None, train_set.metadata.get("reference")):
            print(f"the initial model learned from {old_reference}: its per-element energies are refitted to "
                  "the new labels first", flush=True)
    model = train(train_set, opts, validation_set=validation_set, history_path=products[2], plot_path=products[3],
                  initial=initial)
    metrics = {"validation": model.training_report["validation"]}
    if test_set is not None:
        metrics["test"] = evaluate(model, test_set)
        metrics["test"]["sets"] = list(config.test)
    save_model(model, output, reference=train_set.metadata.get("reference", "unknown"),
               training_set_hash=train_set.hash(), metrics=metrics, description=config.description)
    print(json.dumps(metrics, indent=2))
    print(f"wrote {output}, {products[1].name}, {products[2].name}, {products[3].name}")
    return 0


def _model_info(name) -> int:
    import json

    from .ml import read_header

    print(json.dumps(read_header(name), indent=2))
    return 0


def _ipi(args) -> int:
    from .config import load_config
    from .interfaces.ipi import IPIClient
    from .jobs import build_potential, describe_environment

    config, _ = load_config(args.config, args.overrides)
    hamiltonian = build_potential(config)
    print(hamiltonian.partition.report())
    client = IPIClient(hamiltonian, args.address, port=args.port, sockets_prefix=args.sockets_prefix,
                       connect_timeout_s=args.connect_timeout)
    what = describe_environment(config)
    print(f"\nserving energies and forces of {hamiltonian.qm.method}/{config.qm.basis} in {what} to i-PI at the "
          f"{client.where} ...", flush=True)
    start = time.perf_counter()
    n = client.run()
    print(f"i-PI sent EXIT: {n} force evaluations in {time.perf_counter() - start:.1f} s")
    return 0


def summary(part, result, elapsed_s: float) -> str:
    """The readable result block of a single point."""
    system = part.system
    f = result.forces
    norms = np.linalg.norm(f, axis=1)
    worst = int(np.argmax(norms))
    lines = [
        "",
        "Result (eV, eV/Å, e)",
        f"  total energy        : {result.energy:16.6f} eV",
        f"  QM energy (embedded): {result.qm_energy:16.6f} eV",
        f"  QM-environment vdW  : {result.vdw_energy:16.6f} eV",
        f"  environment energy  : {result.env_energy:16.6f} eV",
        f"  SCF cycles          : {result.scf_cycles} ({result.details.get('scf_strategy', '')})",
        f"  charges seen by QM  : {len(result.site_charges)} sites, total {result.site_charges.sum():+.4f} e",
        f"  RMS force           : {np.sqrt(np.mean(norms ** 2)):.4f} eV/Å; largest {norms[worst]:.4f} eV/Å "
        f"on {system.atom_label(worst)}",
        f"  net force           : {np.abs(f.sum(axis=0)).max():.2e} eV/Å (should be ~0)",
    ]
    if result.stress is not None:
        from . import units

        gpa = result.stress * units.EV_PER_A3_GPA
        lines.append(f"  stress (GPa)        : xx {gpa[0, 0]:.4f} yy {gpa[1, 1]:.4f} zz {gpa[2, 2]:.4f} "
                     f"yz {gpa[1, 2]:.4f} xz {gpa[0, 2]:.4f} xy {gpa[0, 1]:.4f}; potential pressure "
                     f"{-np.trace(gpa) / 3:.4f} GPa (no kinetic part)")
    lines.append("  forces on QM atoms (eV/Å):")
    lines += [
        f"    {system.atom_label(int(i)):28s} {f[i, 0]:10.4f} {f[i, 1]:10.4f} {f[i, 2]:10.4f}" for i in part.qm_atoms]
    lines.append(f"  wall time           : {elapsed_s:.1f} s")
    return "\n".join(lines)


def write_extxyz(path: Path, system, result) -> None:
    """Positions (Å) and forces (eV/Å) in extended XYZ, energy (eV) in the comment line."""
    header = (f'Properties=species:S:1:pos:R:3:forces:R:3 energy={result.energy:.8f} '
              f'units="positions:Angstrom forces:eV/Angstrom energy:eV"')
    rows = [f"{e:2s} {p[0]:14.8f} {p[1]:14.8f} {p[2]:14.8f} {f[0]:14.8f} {f[1]:14.8f} {f[2]:14.8f}"
            for e, p, f in zip(system.elements, system.positions, result.forces)]
    with open(path, "x") as handle:  # "x": never overwrite
        handle.write(f"{system.n_atoms}\n{header}\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
