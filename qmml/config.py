"""YAML job configuration, validated with pydantic (unknown keys are errors, not ignored)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import InputError


class _Strict(BaseModel):
    # NaN and inf are never a setting
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _engine_defaults() -> dict:
    """`PySCFEngine`'s keyword defaults: the one place they are written (the ``qm:`` keys map onto it)."""
    import inspect

    from .qm.engine import PySCFEngine

    return {name: p.default for name, p in inspect.signature(PySCFEngine).parameters.items()
            if p.default is not inspect.Parameter.empty}


_ENGINE = _engine_defaults()
#: the ``qm:`` keys that go to `qmml.partition` (the rest go to `PySCFEngine`)
PARTITION_KEYS = ("selection", "charge", "multiplicity", "link", "boundary", "buffer_A", "complete", "allow_polar_cuts",
                  "allow_multiple_bond_cuts", "allow_multiple_links")


class QMConfig(_Strict):
    """The ``qm:`` section: the QM region (`qmml.partition` keywords) and its engine (`PySCFEngine` keywords,
    defaults taken from its signature)."""

    selection: str | list[int] = Field(description="MDAnalysis selection string or atom indices")
    charge: int = Field(0, ge=-200, le=200, description="charge of the QM region, e")
    multiplicity: int = Field(1, ge=1, le=30)
    method: str = _ENGINE["method"]
    basis: str = _ENGINE["basis"]
    density_fit: bool = _ENGINE["density_fit"]
    conv_tol: float = Field(_ENGINE["conv_tol"], gt=0, le=1e-3, description="SCF energy convergence, Hartree")
    guess: Literal["extrapolate", "fit", "previous", "default"] = Field(
        _ENGINE["guess"], description="SCF initial guess: extrapolated from previous MD steps (polynomial in time, "
        "or 'fit': weights fitted to the geometries, for multiple-time-step runs), the last density, or PySCF's")
    guess_order: int = Field(_ENGINE["guess_order"], ge=1, le=8, description="densities the extrapolation uses")
    embedding: Literal["exact", "integrals"] = Field(
        _ENGINE["embedding"], description="'exact': distant sites through exact Hermite-multipole series once "
        "series_min_sites are that far (orders from rigorous bounds for series_tolerance), or integrals for every site")
    series_min_sites: int = Field(_ENGINE["series_min_sites"], ge=0, description="embedding 'exact': distant sites "
                                  "needed before the series are used")
    series_tolerance: float = Field(_ENGINE["series_tolerance"], gt=0, le=1e-3, description="embedding 'exact': what the "
                                    "series may leave out of the energy (rigorous bound), Hartree; forces 1000x per Bohr")
    far_field_A: float | None = Field(_ENGINE["far_field_A"], gt=0, description="sites beyond this distance from the QM centre "
                                      "enter through a multipole expansion, Å (None: exact for every site)")
    far_field_width_A: float = Field(_ENGINE["far_field_width_A"], ge=0, description="blending width inside far_field_A, Å")
    near_field_A: float = Field(_ENGINE["near_field_A"], gt=0, description="periodic boxes: site images within this distance of the QM "
                                "centre enter through exact integrals, the rest through Ewald sums on the QM "
                                "atoms' multipoles, Å")
    near_field_width_A: float = Field(_ENGINE["near_field_width_A"], ge=0, description="periodic boxes: blending width inside near_field_A, Å")
    ewald_accuracy: float = Field(_ENGINE["ewald_accuracy"], gt=0, lt=1e-3, description="periodic boxes: relative size of the "
                                  "neglected Ewald terms")
    device: Literal["cpu", "gpu", "auto"] = Field(_ENGINE["device"], description="where the QM calculation runs "
                                                  "('gpu' needs CUDA and gpu4pyscf)")
    memory_MB: float = Field(_ENGINE["memory_MB"], gt=0, description="memory PySCF may use on top of what the process "
                             "already holds, MB")
    link: str | float = "scaled"
    boundary: Literal["none", "z1", "z2", "z3", "rc", "rcd", "shift"] = "rcd"
    buffer_A: float | None = Field(None, ge=0, le=100)
    complete: Literal["residue", "molecule"] | None = None
    allow_polar_cuts: bool = False
    allow_multiple_bond_cuts: bool = False
    allow_multiple_links: bool = False

    def partition_options(self) -> dict:
        """Keywords of `qmml.partition`; the selection is its ``qm`` argument."""
        return {("qm" if key == "selection" else key): getattr(self, key) for key in PARTITION_KEYS}

    def engine_options(self) -> dict:
        """Keywords of `PySCFEngine`: every other key of the section."""
        return self.model_dump(exclude=set(PARTITION_KEYS))


class EnvironmentConfig(_Strict):
    type: Literal["fixed_charges", "ml"] = "fixed_charges"
    model: str | None = Field(None, description="environment model: shipped name (water, organic) or .pt path")
    scheme: Literal["additive", "subtractive"] = "additive"
    coulomb: Literal["dsf", "ewald"] | None = Field(None, description="form of the model's Coulomb term between "
                                                    "molecules: damped shifted force (as trained) or the full Ewald "
                                                    "sum; default the model's own")
    total_charge: int | None = Field(None, description="charge of the whole system, e (default: from topology)")
    charge_radii_A: float | dict[str, float] | None = None
    embedding_cutoff_A: float | None = Field(None, gt=0, description="switch embedding charges off beyond this, Å")
    switch_width_A: float = Field(1.0, gt=0, le=100)

    @model_validator(mode="after")
    def _model_for_ml(self):
        if self.type == "ml" and not self.model:
            raise ValueError("type 'ml' needs model: (a shipped model name such as water, or a .pt file)")
        if self.type == "fixed_charges" and self.scheme == "subtractive":
            raise ValueError("scheme 'subtractive' needs type: ml")
        return self


class MMConfig(_Strict):
    """The ``mm:`` section: the structure parameterized by a classical force field through OpenMM (`qmml.mm`).
    The structure is one PDB/mmCIF file with every hydrogen (a CRYST1 record makes it periodic, PME), or an
    AMBER PRMTOP + INPCRD pair."""

    forcefield: list[str] = Field(["amber14-all.xml", "amber14/tip3p.xml"], description="OpenMM force-field XML files "
                                  "(OpenMM's names or paths); ignored for a PRMTOP")
    cutoff_A: float = Field(10.0, gt=0, le=50, description="PME real-space cutoff, Å (periodic structures)")
    platform: Literal["CPU", "Reference", "CUDA", "OpenCL"] = Field("CPU", description="OpenMM platform")
    threads: int | None = Field(None, ge=1, le=1024, description="threads of OpenMM's CPU platform")
    stress: bool = Field(True, description="periodic boxes: the MM stress by finite strain (12 OpenMM energies per "
                         "step); false for fixed-volume runs (no stress at all; constant pressure refuses)")


class MLShellConfig(_Strict):
    """The ``ml_shell:`` section: the ML layer between the QM region and the MM layer, whole residues."""

    radius_A: float | None = Field(None, gt=0, le=50, description="every residue with an atom within this distance "
                                   "of a QM atom, Å")
    selection: str | list[int] | None = Field(None, description="or: MDAnalysis selection string or atom indices")
    restraint_force_constant: float | None = Field(None, gt=0, le=1e4, description="a flat-bottomed wall (eV/Å²) that "
                                                   "keeps shell waters and ions in and MM ones out "
                                                   "(qmml.sampling.ShellBoundaryRestraint); none by default")

    @model_validator(mode="after")
    def _one_way(self):
        if (self.radius_A is None) == (self.selection is None):
            raise ValueError("give radius_A or selection (one of them)")
        return self


def _guard_defaults() -> dict:
    """`StepGuard`'s defaults: the one place they are written."""
    import dataclasses

    from .md.guard import StepGuard

    return {f.name: f.default for f in dataclasses.fields(StepGuard)}


_GUARD = _guard_defaults()


class GuardConfig(_Strict):
    """``md.guard``: the limits of `qmml.md.StepGuard`; a step beyond them stops the run (exit status 3)."""

    temperature_factor: float = Field(_GUARD["temperature_factor"], gt=1, le=1e4, description="stop above this "
                                      "multiple of the thermostat temperature (NVE: of the starting temperature)")
    max_temperature_K: float = Field(_GUARD["max_temperature_K"], gt=0, le=1e7, description="NVE: stop above this "
                                     "kinetic temperature (or temperature_factor x the start, if higher), K")
    max_displacement_A: float = Field(_GUARD["max_displacement_A"], gt=0, le=1e3, description="stop when an atom "
                                      "moves further in one step, Å")
    energy_tolerance_eV_per_atom: float = Field(_GUARD["energy_tolerance_eV_per_atom"], gt=0, le=1e3,
                                                description="NVE: stop when the conserved energy has moved this "
                                                "far per atom since the run began, eV")
    max_bond_factor: float | None = Field(_GUARD["max_bond_factor"], gt=1, le=100, description="stop when a "
                                          "topology bond outside the QM region is longer than this multiple of its "
                                          "atoms' covalent radii (null: no bond check)")
    min_contact_factor: float | None = Field(_GUARD["min_contact_factor"], gt=0, lt=1, description="stop when two "
                                             "atoms come closer than this multiple of their covalent radii (null: "
                                             "no contact check)")


#: files of a run folder that a trajectory may not be named as
RUN_FILES = ("config.yaml", "config_history.yaml", "thermo.csv", "thermo.png", "checkpoint.npz", "STOP")


class MDConfig(_Strict):
    """``task: md``: molecular dynamics written to a run folder."""

    integrator: Literal["velocity_verlet", "langevin", "multiple_time_step", "path_integral"] = "langevin"
    timestep_fs: float = Field(0.5, description="time step (the outer one for multiple_time_step), fs")
    steps: int = Field(100, ge=1, le=10**10)
    temperature_K: float = Field(300.0, description="thermostat and initial-velocity temperature, K")
    initial_temperature_K: float | None = Field(None, description="initial velocities, K (default temperature_K)")
    friction_per_ps: float = Field(5.0, ge=0, le=1e4, description="Langevin friction (the centroid's for path_integral), 1/ps")
    seed: int = Field(0, ge=0, lt=2**63)
    inner_steps: int = Field(4, ge=1, le=1000, description="multiple_time_step: inner steps per outer step")
    fast_model: str | None = Field(None, description="multiple_time_step, path_integral with contracted_beads: ML "
                                   "model of the QM region for the cheap force (default: the environment model)")
    beads: int = Field(16, ge=1, le=4096, description="path_integral: ring-polymer beads per atom (1 is classical Langevin)")
    contracted_beads: int | None = Field(None, ge=1, le=4096, description="path_integral: beads that see the QM/ML "
                                         "Hamiltonian (ring-polymer contraction; the ML reference force acts on "
                                         "all beads); default all")
    pressure_bar: float | None = Field(None, ge=-1e4, le=1e6, description="langevin: constant pressure (stochastic cell rescaling) at "
                                       "this pressure, bar; the structure needs a box. None: constant volume")
    compressibility_per_bar: float = Field(4.5e-5, ge=0, le=1e-2, description="barostat coupling compressibility, 1/bar "
                                           "(water 4.5e-5; sets only how fast the volume relaxes)")
    barostat_relaxation_fs: float = Field(1000.0, gt=0, le=1e8, description="barostat relaxation time, fs")
    run_dir: str | None = Field(None, description="output folder (default: <job file stem>_run next to it)")
    thermo_every: int = Field(1, ge=1, le=10**9)
    trajectory: list[str] = Field(["trajectory.extxyz"], description="trajectory files (.extxyz, .dcd, .xtc)")
    trajectory_every: int = Field(10, ge=1, le=10**9)
    checkpoint_every: int = Field(50, ge=1, le=10**9)
    progress: bool = True
    guard: GuardConfig | None = Field(GuardConfig(), description="limits of a sane step (null: no checks)")

    @field_validator("timestep_fs")
    @classmethod
    def _timestep(cls, value):
        if not 0 < value <= 10:
            raise ValueError(f"{value} fs is not a molecular-dynamics time step; the unit is fs (0.5 to 2 is usual)")
        return value

    @field_validator("temperature_K", "initial_temperature_K")
    @classmethod
    def _temperature(cls, value):
        if value is not None and not 0 <= value <= 5000:
            raise ValueError(f"{value} K is outside 0-5000 K; the unit is kelvin (300 for room temperature)")
        return value

    @field_validator("trajectory", mode="before")
    @classmethod
    def _files(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("trajectory")
    @classmethod
    def _distinct_files(cls, value):
        names = [Path(v).name for v in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} named more than once; give each trajectory file its own name")
        taken = sorted(set(names) & set(RUN_FILES))
        if taken:
            raise ValueError(f"{', '.join(taken)} is a file qmml keeps in the run folder; name the trajectory "
                             "otherwise, e.g. trajectory.extxyz")
        return value



class ElasticConfig(_Strict):
    """``task: elastic``: elastic constants and bulk modulus of the job's periodic structure
    (`qmml.analysis.elastic_constants`, `qmml.analysis.equation_of_state`)."""

    strain: float = Field(0.005, gt=0, le=0.05, description="finite strain of each of the six components, +- "
                          "(a fraction; engineering strain for shears)")
    relax_ions: bool = Field(True, description="relax the positions in every strained cell (relaxed-ion constants)")
    fmax: float = Field(1e-3, gt=0, le=1.0, description="force convergence of the relaxations, eV/Å")
    equation_of_state: bool = Field(False, description="also fit E(V) (third-order Birch-Murnaghan) for the bulk "
                                    "modulus")
    volume_range: float = Field(0.04, gt=0, le=0.2, description="equation of state: volumes V0 (1 +- range)")
    points: int = Field(7, ge=5, le=50, description="equation of state: number of volumes")


class JobConfig(_Strict):
    """A qmml job: what to read, how to partition it, and what to compute."""

    structure: list[str] = Field(description="topology and/or coordinate files, relative to the config file")
    guess_bonds: bool = False
    box: list[float] | None = Field(None, description="periodic box [a, b, c] (Å) or [a, b, c, alpha, beta, gamma] "
                                    "(Å, degrees), replacing the structure's own")
    qm: QMConfig
    environment: EnvironmentConfig = EnvironmentConfig()
    mm: MMConfig | None = Field(None, description="a force-field MM layer (QM/MM, or QM/ML/MM with ml_shell)")
    ml_shell: MLShellConfig | None = Field(None, description="three layers: the ML shell (needs mm and "
                                           "environment.type: ml)")
    vdw: Literal["auto", "lj"] | None = "auto"
    task: Literal["single_point", "md", "elastic"] = "single_point"
    output: str | None = Field(None, description="extended XYZ file for positions and forces (never overwritten)")
    md: MDConfig | None = None
    elastic: ElasticConfig | None = None

    @model_validator(mode="after")
    def _task_settings(self):
        if self.task == "md" and self.md is None:
            self.md = MDConfig()
        if self.task == "elastic" and self.elastic is None:
            self.elastic = ElasticConfig()
        if self.ml_shell is not None and (self.mm is None or self.environment.type != "ml"):
            raise ValueError("ml_shell (three layers) needs an mm: section and environment.type: ml")
        if self.mm is not None and self.environment.type == "ml" and self.ml_shell is None:
            raise ValueError("mm: with environment.type: ml needs ml_shell: (the model describes the shell, the "
                             "force field the rest); for QM/MM alone use environment.type: fixed_charges")
        if self.mm is not None and self.box is not None:
            raise ValueError("box: does not apply with mm: (the force field takes the box from the structure's "
                             "CRYST1 record or INPCRD)")
        return self

    @field_validator("structure", mode="before")
    @classmethod
    def _one_or_more(cls, value):
        return [value] if isinstance(value, str) else value

    def with_absolute_paths(self, root: Path, stem: str) -> "JobConfig":
        """This config with every file and folder absolute (relative ones are relative to ``root``, the job
        file's folder): structure files, ``.pt`` model files, ``output`` and ``md.run_dir`` (default
        ``<stem>_run``).  `load_config` does this once; everything after it uses the paths as they are."""

        def absolute(value):
            return str((root / value).resolve())

        def model(value):
            return absolute(value) if value and value.endswith(".pt") else value

        changes = {"structure": [absolute(s) for s in self.structure],
                   "environment": self.environment.model_copy(update={"model": model(self.environment.model)}),
                   "output": absolute(self.output) if self.output else None}
        if self.md is not None:
            changes["md"] = self.md.model_copy(update={
                "fast_model": model(self.md.fast_model),
                "run_dir": absolute(self.md.run_dir if self.md.run_dir else f"{stem}_run")})
        return self.model_copy(update=changes)


def load_config(path, overrides=()) -> tuple[JobConfig, Path]:
    """Read and validate a job file; returns the config and the folder relative paths refer to.

    Parameters
    ----------
    path : path
    overrides : sequence of str
        ``key=value`` settings applied on top of the file (dotted keys, YAML values), e.g.
        ``md.steps=500``.

    Raises
    ------
    InputError
        One line naming the file, the key and the fix.
    """
    config, root = _load(path, JobConfig, overrides)
    return config.with_absolute_paths(root, Path(path).stem), root


def apply_overrides(data: dict, overrides, source: str) -> dict:
    """``data`` with each ``dotted.key=value`` of ``overrides`` set (values parsed as YAML)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item!r}: expected key=value, e.g. md.steps=500")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise InputError(f"--set {item!r}: the value is not valid YAML") from None
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise InputError(f"--set {item!r}: '{part}' in {source} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def _load(path, schema, overrides=()):
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; give the path of a YAML job file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" line {where.line + 1}" if where else ""
        raise InputError(f"{path}:{line} is not valid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of keys (structure:, qm:, ...) at the top level")
    data = apply_overrides(data, overrides, str(path))
    try:
        config = schema.model_validate(data)
    except ValidationError as err:
        raise InputError(f"{path}: {_explain(err.errors()[0], schema)}") from None
    return config, path.resolve().parent


def _explain(error: dict, schema) -> str:
    """One sentence: the key, what is wrong and the fix."""
    loc = [str(k) for k in error["loc"]]
    key = ".".join(loc) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        fix = "remove it or check its spelling"
        known = _known_keys(schema, loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.5) if known else []
        if close:
            fix = f"did you mean '{close[0]}'? (units are part of the names, e.g. timestep_fs)"
        return f"key '{key}': {message}; {fix}"
    if error["type"] == "missing":
        return f"key '{key}': {message}; add it"
    if error["type"] == "value_error":
        return f"key '{key}': {message}" if loc else message
    return f"key '{key}': {message}; got {error.get('input')!r}"


def _known_keys(schema, path) -> list[str]:
    model = schema
    for part in path:
        field = model.model_fields.get(part)
        if field is None:
            return []
        candidates = [a for a in getattr(field.annotation, "__args__", ()) if isinstance(a, type)] + [field.annotation]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)


class ModelArchitectureConfig(_Strict):
    cutoff: float = Field(5.0, gt=0, description="descriptor cutoff, Å")
    n_radial: int = Field(12, ge=2)
    n_channels: int = Field(10, ge=1)
    hidden: list[int] = [64, 64]
    n_members: int = Field(1, ge=1, description="committee size")
    coulomb_cutoff: float | None = Field(None, gt=0, description="explicit Coulomb between groups, cutoff Å")
    dispersion: dict | None = Field(None, description="explicit D3(BJ) dispersion term: parameters of "
                                                      "qmml.ml.D3Dispersion ({} for the defaults)")
    baseline: dict | None = Field(None, description="Morse X-H bonds within molecules and contact walls between "
                                                    "them: parameters of qmml.ml.BondBaseline ({} for the defaults)")
    charge_groups: Literal["molecule", "structure"] = Field(
        "molecule", description="conserve charge per molecule, or per structure (charge transfer allowed)")
    embedding_charges: bool = Field(False, description="a second charge head for embedding, trained on the "
                                                       "frames' ESP-fitted charges (esp_charges)")


class TrainingLoopConfig(_Strict):
    energy_weight: float = Field(10.0, ge=0)
    force_weight: float = Field(1.0, ge=0)
    charge_weight: float = Field(100.0, ge=0)
    stress_weight: float = Field(10.0, ge=0, description="weight of the per-atom virial (frames with stress)")
    esp_weight: float = Field(100.0, ge=0, description="weight of the embedding charges (frames with esp_charges)")
    learning_rate: float = Field(2e-3, gt=0)
    batch_size: int = Field(16, ge=1)
    max_epochs: int = Field(200, ge=1)
    patience: int = Field(25, ge=1)
    validation_fraction: float = Field(0.1, gt=0, lt=1)
    seed: int = 0
    dtype: Literal["float32", "float64"] = "float32"
    max_minutes: float | None = Field(None, gt=0, description="wall-time budget for all members")
    refit_energy_offsets: bool | None = Field(None, description="with 'initial': refit its per-element energies "
                                              "to the labels first (default: when the labels' reference "
                                              "differs from the model's)")


class TrainConfig(_Strict):
    """``qmml train``: datasets in, a model file (plus header, history and learning curve) out."""

    train: list[str] = Field(description="training dataset(s) (.npz from qmml.ml.Dataset.save; glob patterns allowed)")
    validation: list[str] | None = None
    test: list[str] | None = Field(None, description="held-out set(s) evaluated once at the end")
    output: str = Field(description="model file to write (.pt; never overwritten)")
    initial: str | None = Field(None, description="continue from this model (shipped name or .pt path): its "
                                                  "architecture is kept and the model section is ignored")
    description: str = ""
    model: ModelArchitectureConfig = ModelArchitectureConfig()
    training: TrainingLoopConfig = TrainingLoopConfig()

    @field_validator("train", "validation", "test", mode="before")
    @classmethod
    def _paths(cls, value):
        return [value] if isinstance(value, str) else value


def load_train_config(path) -> tuple[TrainConfig, Path]:
    """Read and validate a ``qmml train`` file (same error style as `load_config`)."""
    return _load(path, TrainConfig)
