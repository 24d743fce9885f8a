"""Umbrella sampling with every window as an independent task (local process pool, Dask, SLURM).

A window is an `UmbrellaWindow`: plain, picklable data describing the potential as a *recipe*
(a `Hamiltonian` holds PySCF objects and a torch model, which are built in the worker, not sent
to it), the collective variable, the restraint centre and force constant, the start, and the MD
settings.  `run_umbrella_window` runs one window (`qmml.Restrained` + `qmml.Simulation` with
Langevin BAOAB + `qmml.CollectiveVariableLog`) and returns its samples; `run_umbrella_windows`
runs many through `qmml.parallel.map_tasks`, and `UmbrellaSampling.free_energy` combines them by
MBAR (`qmml.analysis.umbrella_free_energy`).

Files of window ``k`` in ``output_dir``: ``window_kkk.csv`` (the variable at every reported step,
Å, and the bias, eV), ``window_kkk.npz`` (checkpoint) and ``window_kkk.json`` (its settings).
Nothing is overwritten: running the same windows into the same folder again continues each window
from its checkpoint (a finished window is only read back), so a batch job killed at its time limit
is resumed by submitting it again, and a longer ``steps`` extends the windows.  The results do not
depend on the executor: same seeds, same samples, bit for bit.

Units: Å, eV, fs, K.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from .errors import InputError, QmmlError
from .potential import Potential

#: Largest force (eV/Å) at which the optional relaxation before a window stops.
RELAX_FMAX_EV_A = 0.2


# -- potential recipes: built where the window runs -------------------------------------------------
def _absolute(path) -> str:
    return str(Path(path).expanduser().resolve())


class MLPotentialFactory:
    """Builds ``qmml.MLPotential(qmml.load_model(model), system)`` when called (in the worker).

    Parameters
    ----------
    structure : System, path or sequence of paths
        A `qmml.System`, or files `qmml.load_system` reads (topology and coordinates); paths are
        made absolute here, so workers started elsewhere find them.
    model : str or path
        A shipped model name ("water", "organic") or a ``.pt`` file.
    total_charge, members
        As in `qmml.MLPotential`.
    """

    def __init__(self, structure, model="water", *, total_charge: int | None = None, members=None):
        from .system import System

        if isinstance(structure, System):
            # the MDAnalysis universe is rebuilt on demand; sending it to every worker would be wasted
            self.structure = replace(structure, _universe=None)
        elif isinstance(structure, (str, os.PathLike)):
            self.structure = (_absolute(structure),)
        else:
            self.structure = tuple(_absolute(p) for p in structure)
        looks_like_file = Path(model).suffix == ".pt" or Path(model).exists()
        self.model = _absolute(model) if looks_like_file else str(model)
        self.total_charge, self.members = total_charge, members

    def __repr__(self) -> str:
        what = (f"{self.structure.n_atoms}-atom System" if not isinstance(self.structure, tuple)
                else ", ".join(self.structure))
        return f"MLPotentialFactory({what}, model={self.model!r})"

    def __call__(self):
        from .ml import MLPotential, load_model
        from .system import load_system

        system = load_system(*self.structure) if isinstance(self.structure, tuple) else self.structure
        return MLPotential(load_model(self.model), system, total_charge=self.total_charge, members=self.members)


class ConfigPotentialFactory:
    """Builds the QM/ML `Hamiltonian` of a qmml job file (structure, qm, environment, vdw) when called.

    Parameters
    ----------
    path : path
        A YAML job file as ``qmml run`` reads it; its ``md`` and ``task`` sections are ignored here.
    overrides : sequence of str
        ``key=value`` settings on top of the file, as ``qmml run --set``.
    """

    def __init__(self, path, overrides=()):
        if not Path(path).is_file():
            raise InputError(f"potential: no job file {path}; give the path of a qmml YAML job file")
        self.path, self.overrides = _absolute(path), tuple(overrides)

    def __repr__(self) -> str:
        return f"ConfigPotentialFactory({self.path!r}{', ' + repr(self.overrides) if self.overrides else ''})"

    def __call__(self):
        from .config import load_config
        from .jobs import build_potential

        config, _ = load_config(self.path, self.overrides)
        return build_potential(config)


def _factory(potential):
    """A zero-argument recipe for the potential, or one clear error."""
    if isinstance(potential, (str, os.PathLike)):
        return ConfigPotentialFactory(potential)
    if isinstance(potential, Potential):
        raise InputError(f"potential={potential!r} is a built potential; umbrella windows need a recipe that builds "
                         "it in the worker: MLPotentialFactory(system, 'water'), a qmml YAML job file, or a "
                         "module-level function (functools.partial of one) returning the potential")
    if not callable(potential):
        raise InputError(f"potential={potential!r}: give a recipe (MLPotentialFactory, a YAML job file or a "
                         "module-level function returning the potential)")
    return potential


# -- one window ------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False, eq=False)
class UmbrellaWindow:
    """One umbrella window: everything a worker needs, as picklable data.

    Parameters
    ----------
    potential : callable or path
        Recipe of the unbiased potential: a zero-argument callable returning it
        (`MLPotentialFactory`, `ConfigPotentialFactory`, a module-level function or
        `functools.partial` of one), or the path of a qmml YAML job file.
    variable : collective variable
        E.g. `qmml.colvars.Distance`; its ``name`` labels the CSV column (``<name>_A``).
    centre : float
        Restraint centre, Å.
    force_constant : float
        eV/Å²; the window width is about sqrt(kT/k) (0.07 Å for 5 eV/Å² at 300 K).
    steps : int
        Sampling steps after the equilibration.
    output_dir : path
        Folder of the window's files (created; nothing in it is overwritten).
    index : int
        Window number in the file names (``window_007.csv``).
    positions : array_like (n_atoms, 3), optional
        Start, Å (default: the potential's system).
    timestep_fs, temperature_K, friction_per_ps, seed
        Langevin BAOAB settings; ``seed`` seeds both the initial velocities (Maxwell-Boltzmann at
        ``temperature_K``) and the thermostat.
    equilibration_steps : int
        Steps run before sampling starts (their rows stay in the CSV; the samples skip them).
    every : int
        Steps between samples.
    relax_steps : int
        L-BFGS steps of the restrained potential before the dynamics (at most; stops at 0.2 eV/Å),
        to let the surroundings make room for a start far from the restraint centre.
    checkpoint_every : int
        Steps between checkpoints.
    """

    potential: object
    variable: object
    centre: float
    force_constant: float
    steps: int
    output_dir: Path
    index: int = 0
    positions: np.ndarray | None = None
    timestep_fs: float = 0.5
    temperature_K: float = 300.0
    friction_per_ps: float = 5.0
    seed: int = 0
    equilibration_steps: int = 0
    every: int = 1
    relax_steps: int = 0
    checkpoint_every: int = 100

    def __post_init__(self):
        def set_(name, value):  # normalizing the fields of a frozen dataclass
            object.__setattr__(self, name, value)

        set_("potential", _factory(self.potential))
        for name in ("value", "gradient", "name"):
            if not hasattr(self.variable, name):
                raise InputError(f"UmbrellaWindow: variable={self.variable!r} has no {name}; give a collective "
                                 "variable such as qmml.colvars.Distance(i, j)")
        for name in ("centre", "force_constant", "timestep_fs", "temperature_K", "friction_per_ps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(value):
                raise InputError(f"UmbrellaWindow: {name}={value!r} must be a finite number")
            set_(name, float(value))
        if self.force_constant <= 0:
            raise InputError(f"UmbrellaWindow: force_constant={self.force_constant} must be positive, eV/Å²")
        for name, least in (("steps", 1), ("index", 0), ("equilibration_steps", 0), ("every", 1), ("relax_steps", 0),
                            ("checkpoint_every", 1), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise InputError(f"UmbrellaWindow: {name}={value!r} must be an integer >= {least}")
            set_(name, int(value))
        if not isinstance(self.output_dir, (str, os.PathLike)):
            raise InputError(f"UmbrellaWindow: output_dir={self.output_dir!r}; give the folder for the window's files")
        set_("output_dir", Path(_absolute(self.output_dir)))
        if self.positions is not None:
            set_("positions", np.array(self.positions, dtype=np.float64))
            if self.positions.ndim != 2 or self.positions.shape[1] != 3:
                raise InputError(f"UmbrellaWindow: positions have shape {self.positions.shape}; give (n_atoms, 3), Å")

    def __repr__(self) -> str:
        return (f"UmbrellaWindow(index={self.index}, {self.variable!r}, centre={self.centre:g} Å, "
                f"force_constant={self.force_constant:g} eV/Å², steps={self.steps}, seed={self.seed})")

    @property
    def total_steps(self) -> int:
        return self.equilibration_steps + self.steps

    def path(self, suffix: str) -> Path:
        """``output_dir/window_kkk<suffix>`` (suffix ".csv", ".npz" or ".json")."""
        return self.output_dir / f"window_{self.index:03d}{suffix}"

    def settings(self) -> dict:
        """What a continued run must share with the run that started the window (not ``steps``)."""
        return {"index": self.index, "variable": f"{type(self.variable).__name__} {self.variable.name}",
                "centre_A": self.centre, "force_constant_eV_A2": self.force_constant,
                "timestep_fs": self.timestep_fs, "temperature_K": self.temperature_K,
                "friction_per_ps": self.friction_per_ps, "seed": self.seed,
                "equilibration_steps": self.equilibration_steps, "every": self.every,
                "relax_steps": self.relax_steps}


@dataclass(frozen=True, eq=False)
class WindowSamples:
    """What one window sampled.

    Attributes
    ----------
    index : int
    centre : float
        Å.
    force_constant : float
        eV/Å².
    samples : ndarray
        The collective variable at the sampled steps (after the equilibration), Å.
    steps : ndarray of int
        The MD step of each sample.
    log_path : Path
        The window's CSV.
    """

    index: int
    centre: float
    force_constant: float
    samples: np.ndarray
    steps: np.ndarray
    log_path: Path


def run_umbrella_window(window: UmbrellaWindow) -> WindowSamples:
    """Run (or continue, or read back) one umbrella window; the task of `run_umbrella_windows`.

    Returns
    -------
    WindowSamples
        Samples at steps ``equilibration_steps + every, ...`` up to ``equilibration_steps + steps``.
    """
    from .md import CollectiveVariableLog, Langevin, Simulation, read_checkpoint
    from .optimization import optimize
    from .restraints import HarmonicRestraint, Restrained

    if not isinstance(window, UmbrellaWindow):
        raise InputError(f"run_umbrella_window: give an UmbrellaWindow, not {type(window).__name__}")
    log_path, checkpoint, settings_path = window.path(".csv"), window.path(".npz"), window.path(".json")
    total = window.total_steps
    done = 0
    if checkpoint.exists():
        _check_settings(window, settings_path)
        done = read_checkpoint(checkpoint)[0].step
    elif log_path.exists() or settings_path.exists():
        raise InputError(f"{log_path.parent}: window {window.index} has files but no checkpoint {checkpoint.name}, so "
                         "it cannot be continued and is never overwritten; move them away or choose another "
                         "output_dir")
    if done < total:
        potential = window.potential()
        biased = Restrained(potential, [HarmonicRestraint(window.variable, window.centre, window.force_constant)])
        integrator = Langevin(window.timestep_fs, window.temperature_K, window.friction_per_ps, window.seed)
        reporters = [CollectiveVariableLog(log_path, [window.variable], every=window.every)]
        options = {"checkpoint_every": window.checkpoint_every, "progress": False}
        if checkpoint.exists():
            sim = Simulation.restart(checkpoint, biased, integrator, reporters=reporters, **options)
        else:
            x = potential.system.positions if window.positions is None else window.positions
            if window.relax_steps:
                x = optimize(biased, x, fmax=RELAX_FMAX_EV_A, max_steps=window.relax_steps, progress=False).positions
            sim = Simulation(biased, integrator, reporters=reporters, positions=x, temperature_K=window.temperature_K,
                             seed=window.seed, checkpoint=checkpoint, **options)
            window.output_dir.mkdir(parents=True, exist_ok=True)
            _write_settings(window, settings_path)
        sim.run(total - sim.state.step)
        if sim.stopped_by:
            raise QmmlError(f"window {window.index} stopped at step {sim.state.step} of {total} ({sim.stopped_by}); "
                            "run the same windows again to continue from its checkpoint")
    steps, values = _read_log(log_path, window.variable.name)
    keep = (steps > window.equilibration_steps) & (steps <= total)
    return WindowSamples(window.index, window.centre, window.force_constant, values[keep], steps[keep], log_path)


def _write_settings(window: UmbrellaWindow, path: Path) -> None:
    from ._version import __version__

    data = {**window.settings(), "potential": repr(window.potential), "qmml_version": __version__}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def _check_settings(window: UmbrellaWindow, path: Path) -> None:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read the settings of window {window.index} ({err}); restore the file or "
                         "choose another output_dir") from None
    for key, value in window.settings().items():
        if saved.get(key) != value:
            raise InputError(f"{path}: window {window.index} was started with {key}={saved.get(key)!r}, this run "
                             f"asks {key}={value!r}; continue it with the same settings (only steps may grow) or "
                             "choose another output_dir")


def _read_log(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path) as handle:
        header = handle.readline().strip().split(",")
    column = f"{name}_A"
    if column not in header or "step" not in header:
        raise InputError(f"{path}: no column {column}; the file was not written by this window")
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return table[:, header.index("step")].astype(np.int64), table[:, header.index(column)]


# -- many windows ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class UmbrellaSampling:
    """The windows of `run_umbrella_windows`, ready for MBAR.

    Attributes
    ----------
    windows : list of WindowSamples
        In the order of the centres.
    temperature_K : float
    """

    windows: list = field(default_factory=list)
    temperature_K: float = 300.0

    @property
    def samples(self) -> list[np.ndarray]:
        """The collective variable of each window, Å."""
        return [w.samples for w in self.windows]

    @property
    def centres(self) -> np.ndarray:
        """Å."""
        return np.array([w.centre for w in self.windows])

    @property
    def force_constants(self) -> np.ndarray:
        """eV/Å²."""
        return np.array([w.force_constant for w in self.windows])

    def free_energy(self, *, bins=30, decorrelate: bool = False):
        """`qmml.analysis.umbrella_free_energy` of these windows (MBAR; needs pymbar).

        Parameters
        ----------
        bins : int or array_like
            Number of bins over the sampled range, or bin edges (Å).
        decorrelate : bool
            Keep only statistically independent samples (production runs).
        """
        from .analysis.free_energy import umbrella_free_energy

        return umbrella_free_energy(self.samples, self.centres, self.force_constants, temperature_K=self.temperature_K,
                                    bins=bins, decorrelate=decorrelate)


def umbrella_windows(potential, variable, centres, force_constant, *, steps: int, output_dir, positions=None,
                     seed: int = 0, **settings) -> list[UmbrellaWindow]:
    """The `UmbrellaWindow` of every centre (window ``k`` gets seed ``seed + k``); see `run_umbrella_windows`."""
    centres = np.atleast_1d(np.asarray(centres, dtype=np.float64))
    if centres.ndim != 1 or len(centres) == 0:
        raise InputError(f"centres={centres!r}: give a list of restraint centres, Å")
    k = np.asarray(force_constant, dtype=np.float64)
    if k.ndim and k.shape != centres.shape:
        raise InputError(f"force_constant: {k.size} values for {len(centres)} centres; give one for all or one per "
                         "window (eV/Å²)")
    k = np.broadcast_to(k, centres.shape)
    starts = [None] * len(centres)
    if positions is not None:
        if np.ndim(positions[0]) == 1:  # positions[0] is one atom: a single start for every window
            starts = [positions] * len(centres)
        elif len(positions) != len(centres):
            raise InputError(f"positions: {len(positions)} starts for {len(centres)} centres; give one (n_atoms, 3) "
                             "array for all windows or one per window, Å")
        else:
            starts = list(positions)
    recipe = _factory(potential)  # once, so every window shares one recipe
    return [UmbrellaWindow(recipe, variable, float(c), float(kk), steps, output_dir, index=i, positions=x0,
                           seed=seed + i, **settings)
            for i, (c, kk, x0) in enumerate(zip(centres, k, starts))]


_WINDOW_SETTINGS = {f.name for f in fields(UmbrellaWindow)} - {"potential", "variable", "centre", "force_constant",
                                                               "steps", "output_dir", "index", "positions", "seed"}


def run_umbrella_windows(potential, variable, centres, force_constant, *, steps: int, output_dir, positions=None,
                         seed: int = 0, executor=None, progress: bool = True, **settings) -> UmbrellaSampling:
    """Run harmonic umbrella windows in parallel and collect their samples.

    Parameters
    ----------
    potential : callable or path
        Recipe of the unbiased potential, built in each worker: `MLPotentialFactory`,
        `ConfigPotentialFactory` (or just the path of a qmml YAML job file), or a module-level
        function / `functools.partial` returning the potential.
    variable : collective variable
        E.g. ``qmml.colvars.Distance(0, 3)``.
    centres : array_like
        Restraint centres, Å, one window each.
    force_constant : float or array_like
        eV/Å², for all windows or one per window.
    steps : int
        Sampling steps per window (after ``equilibration_steps``).
    output_dir : path
        Folder for every window's files; running again into it continues the windows.
    positions : array_like, optional
        Start (n_atoms, 3) for all windows, or one start per window (e.g. from a relaxed scan), Å.
    seed : int
        Window ``k`` uses seed ``seed + k``.
    executor : concurrent.futures.Executor or str, optional
        As in `qmml.parallel.map_tasks` (default: a local process pool).
    progress : bool
        A progress bar over finished windows.
    **settings
        More `UmbrellaWindow` fields: ``timestep_fs`` (0.5), ``temperature_K`` (300),
        ``friction_per_ps`` (5), ``equilibration_steps`` (0), ``every`` (1), ``relax_steps`` (0),
        ``checkpoint_every`` (100).

    Returns
    -------
    UmbrellaSampling
        ``.samples``, ``.centres``, ``.force_constants`` and ``.free_energy(bins=...)``.

    Raises
    ------
    qmml.parallel.TaskError
        When windows fail; the finished windows keep their files and are read back on a re-run.
    """
    from .parallel import map_tasks

    unknown = sorted(set(settings) - _WINDOW_SETTINGS)
    if unknown:
        raise InputError(f"run_umbrella_windows: unknown setting {unknown[0]!r}; the window settings are "
                         f"{', '.join(sorted(_WINDOW_SETTINGS))}")
    windows = umbrella_windows(potential, variable, centres, force_constant, steps=steps, output_dir=output_dir,
                               positions=positions, seed=seed, **settings)
    results = map_tasks(run_umbrella_window, windows, executor=executor, progress=progress,
                        description="umbrella windows")
    return UmbrellaSampling(results, windows[0].temperature_K)
