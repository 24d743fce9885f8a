"""Committee uncertainty of a running simulation: spread of forces, charges and embedding energy.

Where the committee members disagree, the model has not been constrained by training data and its
forces (or the charges that polarize the QM region) cannot be trusted.  Three spreads are monitored
(population standard deviations over the members):

* forces: per atom, norm(sigma_F,i) = sqrt(sum_c sigma_F,ic^2), eV/Å, including each member's charge
  response to the QM potential in a QM/ML run;
* charges: per atom, e;
* embedding energy: the spread of E_emb = sum_j phi_j q~_j over the members' charges with the
  potential phi of the QM region held fixed, eV.  This is the error the charges bring into the QM
  energy, summed over all sites, so many small charge errors that add up are caught too.

`committee_uncertainty` works on an `MLPotential`, a `Hamiltonian` with an ML environment, and
either of them wrapped in `Restrained` or `with_isotopes`: each computes its own spreads
(`qmml.Potential.committee_spread`; a Hamiltonian's environment does the work).  Units: Å, eV, eV/Å, e, V.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True, eq=False)
class Uncertainty:
    """Committee spreads at one structure.

    Attributes
    ----------
    force_std : ndarray (n_atoms,)
        Per-atom force spread norm(sigma_F,i), eV/Å (zero on atoms the model does not describe).
    charge_std : ndarray (n_atoms,)
        Per-atom charge spread, e (zero on QM atoms).
    embedding_std : float
        Spread of sum_j phi_j q~_j with phi fixed, eV (zero without a QM region).
    model_atoms : ndarray of int
        Atoms the environment model describes (the environment in the additive scheme, all atoms
        otherwise): the atoms a labelled cut-out may contain.
    """

    force_std: np.ndarray
    charge_std: np.ndarray
    embedding_std: float
    model_atoms: np.ndarray

    @property
    def max_force_std(self) -> float:
        return float(self.force_std.max(initial=0.0))

    @property
    def max_charge_std(self) -> float:
        return float(self.charge_std.max(initial=0.0))


def require_committee(model) -> None:
    """One clear error when ``model`` has fewer than two members (a spread needs a committee)."""
    if len(model.members) < 2:
        raise InputError(f"the model has {len(model.members)} committee member: train a committee "
                         "(TrainingOptions(n_members=3)) to measure its uncertainty")


def committee_uncertainty(potential, positions, result=None) -> Uncertainty:
    """Committee spreads of ``potential`` at ``positions`` (Å).

    Parameters
    ----------
    potential : qmml.Potential
        An `MLPotential`, a `Hamiltonian` with an ML environment, or either wrapped (`Restrained`,
        `with_isotopes`).  Its model must be a committee (two or more members).
    positions : array_like (n_atoms, 3)
        Å.
    result : PotentialResult, optional
        The potential's result at ``positions`` (a Hamiltonian's gives the QM potential at the sites);
        computed if missing.  Not needed for an `MLPotential`.

    Returns
    -------
    Uncertainty
    """
    from ..potential import Potential

    if not isinstance(potential, Potential):
        raise InputError(f"committee uncertainty needs a qmml potential (MLPotential or Hamiltonian), not {potential!r}")
    return potential.committee_spread(np.asarray(positions, dtype=np.float64), result)
