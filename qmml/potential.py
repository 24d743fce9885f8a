"""The potential contract: what every potential gives and what every driver may ask of it.

A potential has a ``system`` (`qmml.System`: elements, masses, box) and
``compute(positions, *, forces=True, cell=None) -> PotentialResult``.  Drivers (`qmml.Simulation` and
its integrators and reporters, `qmml.optimize`, PIMD, umbrella windows, the ASE calculator, the i-PI
client) use only this contract; they never look for attributes a particular potential may have.

`Potential` is the base class: it supplies the parts of the contract a simple potential does not need
(``state``/``restore`` of what carries over between steps, no partition, no committee).  `PotentialWrapper`
is the base of potentials that change another one (`qmml.Restrained`, `qmml.with_isotopes`): it forwards
everything it does not change, so a wrapper of a wrapper behaves like the potential inside.

Units: positions and cell Å, energy eV, forces eV/Å, stress eV/Å^3, charges e.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import numpy as np

from .errors import InputError


@dataclass(frozen=True, eq=False, kw_only=True)
class PotentialResult:
    """Energy and forces of a whole system at one geometry.

    Attributes
    ----------
    energy : float
        Potential energy, eV.
    forces : ndarray (n_atoms, 3) or None
        eV/Å; None from ``compute(..., forces=False)``.
    stress : ndarray (3, 3) or None
        In a periodic box and with forces: (1/V) dE/d(strain) for a homogeneous strain of all positions
        and the cell, eV/Å^3 (ASE's sign: the pressure is -trace/3 plus the kinetic part); None otherwise.
    charges : ndarray (n_atoms,) or None
        Charge on every atom that has one, e: a model's charges, 0 on atoms described by quantum
        mechanics (their charge is the QM density); None for a potential without charges.
    energy_std : float
        Committee spread of the energy, eV (0 without a committee).
    scf_cycles : int
        SCF iterations spent on this result (0 without a QM part).
    details : dict
        Anything else the potential reports (e.g. ``restraint_energy``, ``scf_strategy``).
    """

    energy: float
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    charges: np.ndarray | None = None
    energy_std: float = 0.0
    scf_cycles: int = 0
    details: dict = field(default_factory=dict)


class Potential:
    """Base class of potentials (see the module docstring for the contract).

    Subclasses set ``self.system`` and implement `compute`.  ``partition`` is the QM/environment partition
    of a QM/ML potential and None otherwise.
    """

    system = None
    partition = None

    def compute(self, positions, *, forces: bool = True, cell=None) -> PotentialResult:
        """Energy (eV) and, with ``forces``, forces (eV/Å) at ``positions`` (Å, (n_atoms, 3)); ``cell`` (3x3
        rows, Å) replaces the system's box for this call (constant-pressure dynamics)."""
        raise NotImplementedError

    def compute_copies(self, positions, *, forces: bool = True, cell=None) -> list:
        """`compute` at each of several geometries of this system, ``positions`` (copies, n_atoms, 3) Å, as a
        list of `PotentialResult` (without ``stress``): the path-integral beads of a potential without memory.
        This default calls `compute` once per geometry; a potential that can evaluate them in one pass
        (`qmml.MLPotential`) overrides it."""
        return [replace(self.compute(x, forces=forces, cell=cell), stress=None) for x in positions]

    def state(self) -> dict:
        """What carries over from one call to the next along a trajectory (e.g. the SCF guess history), as
        plain data for checkpoints; empty for a potential without memory."""
        return {}

    def restore(self, state: dict) -> None:
        """Continue from what `state` returned (a checkpoint)."""

    def replica(self) -> "Potential":
        """The same potential for another trajectory: it shares everything heavy (engine, model) and owns
        its own memory (`state`), starting from a copy of this one's.  Path-integral beads, ASE
        calculators and i-PI geometries each follow one.  A potential without memory is its own replica."""
        return self

    def committee_spread(self, positions, result=None):
        """Committee spreads (`qmml.ml.Uncertainty`) at ``positions``; ``result`` is this potential's result
        there, if known.  Only potentials driven by an `EnvironmentModel` committee have them."""
        raise InputError(f"{self!r} has no environment model: committee uncertainty needs an MLPotential or a "
                         "Hamiltonian with an ML environment (qmml.load_model(...))")

    @property
    def environment_model(self):
        """The `EnvironmentModel` driving this potential (None if none); settable to swap in a retrained one
        (active learning)."""
        return None


class PotentialWrapper(Potential):
    """A potential that changes ``potential`` and forwards everything it does not change.

    Parameters
    ----------
    potential : qmml.Potential
        The potential changed (energies eV, forces eV/Å).
    """

    def __init__(self, potential):
        if not isinstance(potential, Potential):
            raise InputError(f"{type(self).__name__}: {potential!r} is not a qmml potential (subclass "
                             "qmml.Potential and return qmml.PotentialResult from compute)")
        self.potential = potential

    @property
    def system(self):
        return self.potential.system

    @property
    def partition(self):
        return self.potential.partition

    def compute(self, positions, *, forces: bool = True, cell=None) -> PotentialResult:
        return self.potential.compute(positions, forces=forces, cell=cell)

    def state(self) -> dict:
        return self.potential.state()

    def restore(self, state: dict) -> None:
        self.potential.restore(state)

    def replica(self) -> "PotentialWrapper":
        inner = self.potential.replica()
        if inner is self.potential:
            return self
        other = copy.copy(self)
        other.potential = inner
        return other

    def committee_spread(self, positions, result=None):
        return self.potential.committee_spread(positions, result)

    @property
    def environment_model(self):
        return self.potential.environment_model

    @environment_model.setter
    def environment_model(self, model) -> None:
        self.potential.environment_model = model


def check_result(potential, result) -> PotentialResult:
    """``result`` if it is a `PotentialResult`, else one clear error naming the potential."""
    if not isinstance(result, PotentialResult):
        raise InputError(f"{potential!r}.compute returned a {type(result).__name__}, not a qmml.PotentialResult: "
                         "return qmml.PotentialResult(energy=..., forces=...) (eV, eV/Å)")
    return result
