"""Classical electrostatic embedding: fixed environment charges and zero environment energy."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import Environment, EnvironmentEvaluation


class FixedCharges(Environment):
    """An environment of fixed point charges with zero energy and no forces of its own.

    Parameters
    ----------
    charges : array_like, optional
        Charges in e, either one per atom of the system (QM entries are ignored) or one per
        environment atom.  None takes the partition's topology charges (made integer, see
        `qmml.partition`).
    """

    def __init__(self, charges=None):
        self.charges = None if charges is None else np.asarray(charges, dtype=np.float64).ravel()

    def __repr__(self) -> str:
        return "FixedCharges(topology)" if self.charges is None else f"FixedCharges({len(self.charges)} charges)"

    def env_charges(self, partition) -> np.ndarray:
        """The charges of the environment atoms of ``partition``, e."""
        n_env, n_atoms = len(partition.env_atoms), partition.system.n_atoms
        if self.charges is None:
            if partition.env_topology_charges is None:
                raise InputError(f"FixedCharges(): {partition.system.source} has no topology charges; "
                                 "pass the charges explicitly, FixedCharges(charges)")
            return partition.env_topology_charges
        if len(self.charges) == n_atoms:
            return self.charges[partition.env_atoms]
        if len(self.charges) == n_env:
            return self.charges
        raise InputError(f"FixedCharges got {len(self.charges)} charges; give one per atom ({n_atoms}) "
                         f"or one per environment atom ({n_env})")

    def evaluate(self, positions: np.ndarray, partition, scheme: str = "additive", cell=None, *,
                 forces: bool = True) -> EnvironmentEvaluation:
        if scheme != "additive":
            raise InputError(f"scheme={scheme!r} needs an environment model covering all atoms; fixed charges "
                             "have no energy of their own: use scheme='additive' or an ML environment")
        charges = self.env_charges(partition)
        zero = np.zeros_like(positions)
        return EnvironmentEvaluation(energy=0.0, charges=charges, forces=lambda _gradient: zero,
                                     strain_derivative=lambda _gradient: np.zeros((3, 3)))
