"""One umbrella window: `UmbrellaWindow` (plain, picklable data: the potential's recipe, the collective
variable, the restraint centre and force constant, the start and the MD settings) and `run_umbrella_window`
(`qmml.Restrained` + `qmml.Simulation` with Langevin BAOAB + `qmml.CollectiveVariableLog`).

Files of window ``k`` in ``output_dir``: ``window_kkk.csv`` (the variable at every reported step, Å, and the
bias, eV), ``window_kkk.npz`` (checkpoint) and ``window_kkk.json`` (its settings).  Running a window into its
folder again continues it from its checkpoint (a finished window is only read back).  Units: Å, eV, fs, K.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, QmmlError
from .recipes import _absolute, _factory

#: Largest force (eV/Å) at which the optional relaxation before a window stops.
RELAX_FMAX_EV_A = 0.2


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

    Parameters
    ----------
    window : UmbrellaWindow
        The window's potential, restraint, steps and output folder (`umbrella_windows`).

    Returns
    -------
    WindowSamples
        Samples at steps ``equilibration_steps + every, ...`` up to ``equilibration_steps + steps``.
    """
    from ..md import CollectiveVariableLog, Langevin, Simulation, read_checkpoint
    from ..optimization import optimize
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
    from .._version import __version__

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


