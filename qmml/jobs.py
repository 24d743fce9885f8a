"""From a validated job configuration to the objects that run it (used by the CLI and tutorials).

`start_md` writes a run folder: the resolved configuration (``config.yaml``, every path absolute, so
the folder is self-contained, written once), ``config_history.yaml`` (one entry per run and restart),
``thermo.csv`` (+ ``thermo.png``), the trajectory files and ``checkpoint.npz`` (with the job's physics
fingerprint).  Creating ``STOP`` in the folder ends the run cleanly; `restart_md` continues it.  One
process at a time holds a run folder (`qmml.run_folder.RunFolderLock`).
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from .config import JobConfig, load_config
from .errors import InputError

RESOLVED_CONFIG = "config.yaml"
CHECKPOINT = "checkpoint.npz"
THERMO = "thermo.csv"
STOP_FILE = "STOP"


def build_forcefield(config: JobConfig):
    """The job's `qmml.mm.MMForceField` (its ``mm:`` section), or None without one."""
    from .mm import MMForceField

    mm = config.mm
    if mm is None:
        return None
    files = config.structure
    if len(files) == 2 and files[0].lower().endswith((".prmtop", ".parm7")):
        return MMForceField.from_amber(*files, cutoff_A=mm.cutoff_A)
    if len(files) != 1:
        raise InputError(f"key 'structure': with mm: give one PDB/mmCIF file or a PRMTOP and INPCRD, not {files}")
    return MMForceField.from_pdb(files[0], mm.forcefield, cutoff_A=mm.cutoff_A)


def build_partition(config: JobConfig, forcefield=None):
    """The system of the job's structure files (and ``box``; the force field's structure with ``mm:``),
    partitioned by its ``qm:`` section (and ``ml_shell:``)."""
    import dataclasses

    from .partition import partition
    from .system import load_system, normalize_box

    if forcefield is not None:
        system = forcefield.system
    else:
        system = load_system(*config.structure, guess_bonds=config.guess_bonds or None)
    if config.box is not None:
        try:
            system = dataclasses.replace(system, box=normalize_box(config.box))
        except InputError as err:
            raise InputError(f"key 'box': {err}") from None
    shell = {}
    if config.ml_shell is not None:
        shell = dict(shell=config.ml_shell.selection, shell_radius_A=config.ml_shell.radius_A)
    return partition(system, **config.qm.partition_options(), **shell)


def _model(name: str, key: str):
    from .ml import load_model

    try:
        return load_model(name)
    except InputError as err:
        raise InputError(f"key '{key}': {err}") from None


def build_potential(config: JobConfig):
    """The job's `Hamiltonian`: its partition, `PySCFEngine` (the ``qm:`` keys as they are) and environment
    (in `Restrained` with a `ShellBoundaryRestraint` when ``ml_shell.restraint_force_constant`` is set).
    The one builder behind ``qmml run``, ``qmml restart``, ``qmml ipi`` and umbrella windows; ``config`` comes
    from `load_config` (paths absolute)."""
    from .environments import FixedCharges, MMEnvironment
    from .environments.layered import LayeredEnvironment
    from .environments.ml import MLEnvironment
    from .hamiltonian import Hamiltonian
    from .qm import PySCFEngine

    forcefield = build_forcefield(config)
    part = build_partition(config, forcefield)
    env = config.environment
    engine = PySCFEngine(**config.qm.engine_options())
    if env.type == "ml":
        model = _model(env.model, "environment.model")
        if env.coulomb is not None and env.coulomb != model.coulomb_form:
            try:
                model = model.with_coulomb(env.coulomb)
            except InputError as err:
                raise InputError(f"key 'environment.coulomb': {err}") from None
        if forcefield is not None:
            environment = LayeredEnvironment(model, forcefield, platform=config.mm.platform, threads=config.mm.threads,
                                             stress=config.mm.stress)
        else:
            environment = MLEnvironment(model, total_charge=env.total_charge)
    elif forcefield is not None:
        environment = MMEnvironment(forcefield, platform=config.mm.platform, threads=config.mm.threads,
                                    stress=config.mm.stress)
    else:
        environment = FixedCharges()
    hamiltonian = Hamiltonian(part, engine, environment, scheme=env.scheme, vdw=config.vdw,
                              charge_radii_A=env.charge_radii_A, embedding_cutoff_A=env.embedding_cutoff_A,
                              switch_width_A=env.switch_width_A)
    if config.ml_shell is not None and config.ml_shell.restraint_force_constant is not None:
        from .sampling.restraints import Restrained, ShellBoundaryRestraint

        return Restrained(hamiltonian, [ShellBoundaryRestraint(part, config.ml_shell.restraint_force_constant)])
    return hamiltonian


def build_integrator(config: JobConfig, hamiltonian):
    from .md import Langevin, MultipleTimeStep, PathIntegralLangevin, VelocityVerlet

    md = config.md
    if md.pressure_bar is not None:
        from .md import StochasticCellRescaling

        if md.integrator != "langevin":
            raise InputError(f"key 'md.pressure_bar': constant pressure needs md.integrator: langevin, not "
                             f"{md.integrator}")
        if hamiltonian.system.cell is None:
            raise InputError("key 'md.pressure_bar': constant pressure needs a periodic box; the structure has none "
                             "(add a CRYST1 record or box: [a, b, c] to the job file)")
        barostat = StochasticCellRescaling(md.pressure_bar, md.compressibility_per_bar, md.barostat_relaxation_fs)
        return Langevin(md.timestep_fs, md.temperature_K, md.friction_per_ps, md.seed, barostat=barostat)
    if md.integrator == "velocity_verlet":
        return VelocityVerlet(md.timestep_fs)
    if md.integrator == "langevin":
        return Langevin(md.timestep_fs, md.temperature_K, md.friction_per_ps, md.seed)
    if md.integrator == "path_integral":
        contracted = md.contracted_beads
        if contracted is not None and contracted > md.beads:
            raise InputError(f"key 'md.contracted_beads': {contracted} is more than md.beads={md.beads}; "
                             "contract to fewer beads (or leave it out for none)")
        cheap = _ml_reference(config, hamiltonian, "path_integral with contracted_beads") \
            if contracted is not None and contracted < md.beads else None
        return PathIntegralLangevin(md.timestep_fs, md.temperature_K, md.beads,
                                    centroid_friction_per_ps=md.friction_per_ps, seed=md.seed, cheap=cheap,
                                    contracted_beads=contracted if cheap is not None else None)
    return MultipleTimeStep(md.timestep_fs, md.inner_steps,
                            _ml_reference(config, hamiltonian, "multiple_time_step"))


def _ml_reference(config: JobConfig, hamiltonian, purpose: str):
    """The cheap force of multiple time steps and ring-polymer contraction: `MLReference`."""
    from .coupling.reference import MLReference

    if config.environment.type != "ml":
        raise InputError(f"key 'md.integrator': {purpose} needs environment type 'ml' (its cheap force "
                         "is the ML environment plus an ML model of the QM region)")
    md = config.md
    qm_model = _model(md.fast_model, "md.fast_model") if md.fast_model else None
    try:
        return MLReference(hamiltonian, qm_model)
    except InputError as err:
        raise InputError(f"key 'md.fast_model': {err}") from None


def _reporters(config: JobConfig, run_dir: Path):
    from .md import ThermoLog, TrajectoryWriter

    md = config.md
    return [ThermoLog(run_dir / THERMO, every=md.thermo_every)] + [
        TrajectoryWriter(run_dir / name, every=md.trajectory_every) for name in md.trajectory]


def _write_resolved(run_dir: Path, data: dict) -> None:
    import os

    tmp = run_dir / f".{RESOLVED_CONFIG}.tmp"
    tmp.write_text("# resolved by qmml run: every default filled in, paths absolute; 'qmml restart' reads this "
                   "file\n" + yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, run_dir / RESOLVED_CONFIG)


def _guard(config: JobConfig):
    from .md import StepGuard

    guard = config.md.guard
    return None if guard is None else StepGuard(**guard.model_dump())


def start_md(config: JobConfig, *, log=print):
    """Set up and run ``task: md`` of a loaded job (`load_config`) into a fresh run folder (``md.run_dir``);
    returns the Simulation.  The folder is locked for the whole run (`RunFolderLock`)."""
    from .md import Simulation
    from .run_folder import RunFolderLock, append_history, bookkeeping, physics_fingerprint

    run_dir = Path(config.md.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"key 'md.run_dir': {run_dir} is a file, not a folder; choose another with "
                         "--set md.run_dir=NAME")

    def check_fresh():
        if run_dir.is_dir() and any(not bookkeeping(p.name) for p in run_dir.iterdir()):
            raise InputError(f"run folder {run_dir} already exists and is never overwritten; continue it "
                             f"with 'qmml restart {run_dir}' or choose another with --set md.run_dir=NAME")

    check_fresh()
    fingerprint = physics_fingerprint(config)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with RunFolderLock(run_dir):
            check_fresh()  # another process may have started here in the meantime
            ham = build_potential(config)
            log(ham.partition.report())
            integrator = build_integrator(config, ham)
            md = config.md
            initial = md.temperature_K if md.initial_temperature_K is None else md.initial_temperature_K
            # the first energy and forces are computed before anything is written, so a job that cannot
            # start leaves no half-made run folder behind
            sim = Simulation(ham, integrator, reporters=_reporters(config, run_dir), temperature_K=initial,
                             seed=md.seed, checkpoint=run_dir / CHECKPOINT, checkpoint_every=md.checkpoint_every,
                             stop_file=run_dir / STOP_FILE, progress=md.progress, guard=_guard(config),
                             metadata={"fingerprint": fingerprint})
            _write_resolved(run_dir, config.model_dump(mode="json"))
            append_history(run_dir, "run")
            created = False  # from here on the folder holds a run
            log(_settings(config, run_dir, len(ham.partition.env_atoms)))
            return _run(sim, md.steps, run_dir, log)
    finally:
        if created and run_dir.is_dir() and all(bookkeeping(p.name) for p in run_dir.iterdir()):
            for p in run_dir.iterdir():
                p.unlink(missing_ok=True)
            run_dir.rmdir()


def restart_md(run_dir, overrides=(), *, allow_changes: bool = False, log=print):
    """Continue the run in ``run_dir`` from its checkpoint up to ``md.steps`` (``--set md.steps=N`` extends it).

    The job is ``config.yaml`` plus the ``--set`` values of earlier restarts (``config_history.yaml``) plus
    ``overrides``.  Its physics fingerprint must match the checkpoint's; ``allow_changes`` continues anyway
    and records what changed in the history.  ``config.yaml`` itself is never rewritten.
    """
    from .md import Simulation
    from .md.checkpoint import read_checkpoint
    from .run_folder import (RunFolderLock, append_history, changes, describe, history_overrides,
                             physics_fingerprint, read_history)

    run_dir = Path(run_dir)
    config_path = run_dir / RESOLVED_CONFIG
    if not config_path.is_file():
        raise InputError(f"{run_dir}: no {RESOLVED_CONFIG} there; give a run folder written by 'qmml run'")
    for item in overrides:
        if item.partition("=")[0].strip() not in ("md.steps", "md.progress"):
            raise InputError(f"--set {item!r}: a restart may change only md.steps and md.progress (anything else "
                             "would not continue the same run); start a new run instead")
    with RunFolderLock(run_dir):
        history = read_history(run_dir)
        config, _ = load_config(config_path, [*history_overrides(history), *overrides])
        if Path(config.md.run_dir).resolve() != run_dir.resolve():
            config = config.model_copy(update={"md": config.md.model_copy(update={"run_dir": str(run_dir.resolve())})})
        _, sections = read_checkpoint(run_dir / CHECKPOINT)
        stored = sections.get("metadata", {}).get("fingerprint")
        fingerprint = physics_fingerprint(config)
        diff = changes(stored, fingerprint) if stored is not None else {}
        if diff and not allow_changes:
            raise InputError(f"{run_dir}: the job no longer matches the checkpoint's physics ({describe(diff)}); "
                             "undo the edit of config.yaml (or the structure/model files), start a new run, or "
                             "continue anyway with 'qmml restart --allow-changes'")
        if stored is None:
            log(f"note: {run_dir / CHECKPOINT} predates physics fingerprints; the job cannot be checked against it")
        ham = build_potential(config)
        integrator = build_integrator(config, ham)
        md = config.md
        sim = Simulation.restart(run_dir / CHECKPOINT, ham, integrator, reporters=_reporters(config, run_dir),
                                 checkpoint_every=md.checkpoint_every, stop_file=run_dir / STOP_FILE,
                                 progress=md.progress, guard=_guard(config), metadata={"fingerprint": fingerprint})
        remaining = md.steps - sim.state.step
        if remaining <= 0:
            log(f"{run_dir}: already at step {sim.state.step} of {md.steps}; extend with --set md.steps=N")
            return sim
        append_history(run_dir, "restart", overrides, diff)
        if diff:
            log(f"continuing with changed physics, recorded in {run_dir / 'config_history.yaml'}: {describe(diff)}")
        log(f"continuing {run_dir} from step {sim.state.step} ({sim.state.time_fs:.1f} fs) to step {md.steps}")
        return _run(sim, remaining, run_dir, log)


def describe_environment(config: JobConfig) -> str:
    """What the job embeds the QM region in, for messages: the model and scheme, the force field, or both."""
    env, mm = config.environment, config.mm
    forcefield = None
    if mm is not None:
        files = config.structure if len(config.structure) == 2 else mm.forcefield
        forcefield = "force field " + ", ".join(Path(f).name for f in files)
    if env.type == "ml":
        model = f"{env.model} model ({env.scheme})"
        return f"{model} in an ML shell, {forcefield} beyond" if forcefield else model
    return forcefield or "fixed topology charges"


def _settings(config: JobConfig, run_dir: Path, n_env: int) -> str:
    md, qm = config.md, config.qm
    what = describe_environment(config)
    inner = ""
    if md.integrator == "multiple_time_step":
        inner = f", {md.inner_steps} inner steps with {md.fast_model or 'the environment model'}"
    elif md.integrator == "path_integral":
        inner = f", {md.beads} beads" + (f", QM/ML on {md.contracted_beads}" if md.contracted_beads else "")
    return (f"\nMD: {md.integrator}, {md.steps} steps of {md.timestep_fs} fs{inner}, {md.temperature_K} K; "
            f"{qm.method}/{qm.basis} in {n_env} environment atoms ({what})\nwriting to {run_dir} "
            f"(create {run_dir / STOP_FILE} to stop cleanly; continue with 'qmml restart {run_dir}')")


def _run(sim, n_steps: int, run_dir: Path, log):
    import numpy as np

    from .md import read_thermo

    start = time.perf_counter()
    sim.run(n_steps)
    elapsed = time.perf_counter() - start
    thermo = read_thermo(run_dir / THERMO)
    conserved = thermo["conserved_eV"]
    lines = [f"\n{'stopped (' + sim.stopped_by + ')' if sim.stopped_by else 'done'}: step {sim.state.step}, "
             f"{sim.state.time_fs:.1f} fs in {elapsed:.0f} s",
             f"  mean temperature {np.mean(thermo['temperature_K']):.1f} K, mean SCF cycles "
             f"{np.mean(thermo['scf_cycles'][1:]) if len(conserved) > 1 else 0:.1f}, conserved-energy change "
             f"{conserved[-1] - conserved[0]:+.2e} eV",
             f"  files: {', '.join(sorted(p.name for p in run_dir.iterdir() if not p.name.startswith('.')))}"]
    if sim.stopped_by:
        lines.append(f"  continue with 'qmml restart {run_dir}'")
    if "kinetic_virial_eV" in thermo:
        lines.insert(2, f"  mean quantum kinetic energy {np.mean(thermo['kinetic_virial_eV']):.4f} eV "
                        f"(centroid virial; primitive {np.mean(thermo['kinetic_primitive_eV']):.4f} eV)")
    log("\n".join(lines))
    return sim
