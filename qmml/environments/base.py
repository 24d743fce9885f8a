"""The contract every environment (fixed charges, ML models) fulfils for the Hamiltonian."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import InputError


@dataclass(frozen=True, eq=False)
class EnvironmentEvaluation:
    """The environment at one geometry.

    Attributes
    ----------
    energy : float
        Environment energy, eV.
    charges : ndarray (n_env,)
        Charges of the environment atoms (partition order), e.
    forces : callable
        ``forces(charge_gradient)`` returns the forces on all atoms (n_atoms, 3), eV/Å, of
        ``energy + sum_j charge_gradient[j] * charges[j]`` with ``charge_gradient`` held fixed: the
        environment's own forces plus the charge-response term (one vector-Jacobian product).
    energy_std : float
        Committee spread of the energy, eV (0 when the environment has no uncertainty estimate).
    strain_derivative : callable or None
        In a periodic box: ``strain_derivative(charge_gradient)`` returns d/d(strain) (3, 3), eV, of the
        same objective as ``forces`` (homogeneous strain of positions and cell).  None in a box: the
        environment gives no stress, and neither does the Hamiltonian.
    """

    energy: float
    charges: np.ndarray
    forces: Callable[[np.ndarray], np.ndarray]
    energy_std: float = 0.0
    strain_derivative: Callable[[np.ndarray], np.ndarray] | None = None


class Environment:
    """Base class of environments: anything that maps positions to an `EnvironmentEvaluation`.

    ``model`` is the `EnvironmentModel` behind an ML environment (None for fixed charges); settable, so that
    active learning can swap in a retrained committee.  ``schemes`` lists the Hamiltonian schemes it supports.
    """

    model = None
    #: The Hamiltonian schemes the environment supports.
    schemes = ("additive",)

    def check(self, partition, scheme: str) -> None:
        """Refuse, with one clear error, a partition this environment cannot describe (the `Hamiltonian` asks
        before anything runs).  Default: nothing to check."""

    def qm_contact_atoms(self, partition, scheme: str) -> np.ndarray:
        """Environment atoms whose repulsion and dispersion with the QM atoms this environment does not describe
        itself: the Hamiltonian's QM-environment van der Waals term covers them (``vdw="auto"``).  Default: every
        environment atom in the additive scheme, none in the subtractive one."""
        return partition.env_atoms if scheme == "additive" else np.zeros(0, dtype=int)

    def evaluate(self, positions: np.ndarray, partition, scheme: str = "additive", cell=None, *,
                 forces: bool = True) -> EnvironmentEvaluation:
        """Energy, charges (e) and the force function at ``positions`` (Å) for ``scheme``; ``cell`` (3x3
        rows, Å) is the periodic box of this call (None: the system's).  ``forces=False``: the force
        functions will not be called (an environment may then skip what they need)."""
        raise NotImplementedError

    def committee_spread(self, positions, partition, scheme: str, charge_gradient, cell=None):
        """Committee spreads (`qmml.ml.Uncertainty`) with the QM potential (``charge_gradient``, V, per
        environment charge) held fixed; only committee models have them."""
        raise InputError(f"{self!r} has no committee: committee uncertainty needs an ML environment "
                         "(qmml.load_model(...)) trained as a committee")
