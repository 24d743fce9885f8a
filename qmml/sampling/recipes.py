"""Recipes of potentials, built where a task runs (a `Hamiltonian` holds PySCF objects and a torch model,
which are built in the worker, not sent to it): `MLPotentialFactory`, `ConfigPotentialFactory` (a qmml job
file, through `qmml.jobs.build_potential`), or any module-level function returning a potential.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from ..errors import InputError
from ..potential import Potential


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
        from ..system import System

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
        from ..ml import MLPotential, load_model
        from ..system import load_system

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
        from ..config import load_config
        from ..jobs import build_potential

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


