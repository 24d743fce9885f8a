"""Umbrella sampling with every window as an independent task (local process pool, Dask, SLURM).

A window is an `UmbrellaWindow`: plain, picklable data describing the potential as a *recipe*
(a `Hamiltonian` holds PySCF objects and a torch model, which are built in the worker, not sent
to it), the collective variable, the restraint centre and force constant, the start, and the MD
settings.  `run_umbrella_window` runs one window (`qmml.Restrained` + `qmml.Simulation` with
Langevin BAOAB + `qmml.CollectiveVariableLog`) and returns its samples; `run_umbrella_windows`
runs many through `qmml.parallel.map_tasks`, and `UmbrellaSampling.free_energy` combines them by
MBAR (`qmml.sampling.umbrella_free_energy`).

Files of window ``k`` in ``output_dir``: ``window_kkk.csv`` (the variable at every reported step,
Å, and the bias, eV), ``window_kkk.npz`` (checkpoint) and ``window_kkk.json`` (its settings).
Nothing is overwritten: running the same windows into the same folder again continues each window
from its checkpoint (a finished window is only read back), so a batch job killed at its time limit
is resumed by submitting it again, and a longer ``steps`` extends the windows.  The results do not
depend on the executor: same seeds, same samples, bit for bit.

Units: Å, eV, fs, K.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from ..errors import InputError
from .recipes import _factory
from .windows import UmbrellaWindow, run_umbrella_window


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
        """`qmml.sampling.umbrella_free_energy` of these windows (MBAR; needs pymbar).

        Parameters
        ----------
        bins : int or array_like
            Number of bins over the sampled range, or bin edges (Å).
        decorrelate : bool
            Keep only statistically independent samples (production runs).
        """
        from .free_energy import umbrella_free_energy

        return umbrella_free_energy(self.samples, self.centres, self.force_constants, temperature_K=self.temperature_K,
                                    bins=bins, decorrelate=decorrelate)


def umbrella_windows(potential, variable, centres, force_constant, *, steps: int, output_dir, positions=None,
                     seed: int = 0, **settings) -> list[UmbrellaWindow]:
    """The `UmbrellaWindow` of every centre (window ``k`` gets seed ``seed + k``); see `run_umbrella_windows`.

    Parameters
    ----------
    potential, variable, centres, force_constant, steps, output_dir, positions, seed
        As in `run_umbrella_windows` (Å, eV/Å^2).
    """
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
    from ..parallel import map_tasks

    unknown = sorted(set(settings) - _WINDOW_SETTINGS)
    if unknown:
        raise InputError(f"run_umbrella_windows: unknown setting {unknown[0]!r}; the window settings are "
                         f"{', '.join(sorted(_WINDOW_SETTINGS))}")
    windows = umbrella_windows(potential, variable, centres, force_constant, steps=steps, output_dir=output_dir,
                               positions=positions, seed=seed, **settings)
    results = map_tasks(run_umbrella_window, windows, executor=executor, progress=progress,
                        description="umbrella windows")
    return UmbrellaSampling(results, windows[0].temperature_K)
