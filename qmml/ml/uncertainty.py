"""Committee uncertainty of a running simulation: spread of forces, charges and embedding energy.

Where the committee members disagree, the model has not been constrained by training data and its
forces (or the charges that polarize the QM region) cannot be trusted.  Three spreads are monitored
(population standard deviations over the members):

* forces: per atom, |sigma_F,i| = sqrt(sum_c sigma_F,ic^2), eV/Å, including each member's charge
  response to the QM potential in a QM/ML run;
* charges: per atom, e;
* embedding energy: the spread of E_emb = sum_j phi_j q~_j over the members' charges with the
  potential phi of the QM region held fixed, eV.  This is the error the charges bring into the QM
  energy, summed over all sites, so many small charge errors that add up are caught too.

`committee_uncertainty` works on an `MLPotential`, a `Hamiltonian` with an ML environment, and
either of them wrapped in `Restrained` or `with_isotopes`.  Units: Å, eV, eV/Å, e, V.
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
        Per-atom force spread |sigma_F,i|, eV/Å (zero on atoms the model does not describe).
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


def model_holder(potential):
    """The object whose ``model`` attribute is the committee driving ``potential`` (an `MLPotential`
    or a Hamiltonian's `MLEnvironment`), looking through wrappers that hold the potential they
    change (`Restrained`, `with_isotopes`)."""
    from ..environments.ml import MLEnvironment
    from .potential import MLPotential

    inner = potential
    for _ in range(16):  # wrappers of wrappers, bounded
        if isinstance(inner, MLPotential):
            return inner
        environment = getattr(inner, "environment", None)
        if isinstance(environment, MLEnvironment):
            return environment
        inner = getattr(inner, "potential", None)
        if inner is None:
            break
    raise InputError(f"{potential!r} has no environment model: committee uncertainty needs an MLPotential or a "
                     "Hamiltonian with an ML environment (qmml.load_model(...))")


def committee_uncertainty(potential, positions, result=None) -> Uncertainty:
    """Committee spreads of ``potential`` at ``positions`` (Å).

    Parameters
    ----------
    potential : MLPotential, Hamiltonian or Restrained
        Its model must be a committee (two or more members), or every spread is zero.
    positions : array_like (n_atoms, 3)
        Å.
    result : Result, optional
        The Hamiltonian's result at ``positions`` (for the QM potential at the sites); computed if
        missing.  Not needed for an `MLPotential`.

    Returns
    -------
    Uncertainty
    """
    from .potential import MLPotential

    holder = model_holder(potential)
    model = holder.model
    if len(model.members) < 2:
        raise InputError(f"the model has {len(model.members)} committee member: train a committee "
                         "(TrainingOptions(n_members=3)) to measure its uncertainty")
    x = np.asarray(positions, dtype=np.float64)
    n = len(x)
    if isinstance(holder, MLPotential):
        p = model.predict(holder.system.atomic_numbers, x, cell=holder.cell, groups=holder.groups,
                          group_charges=holder.group_charges, molecules=holder.molecules, uncertainty=True)
        return Uncertainty(np.linalg.norm(p.forces_std, axis=1), p.charges_std, 0.0, np.arange(n))

    hamiltonian = potential
    while not isinstance(getattr(hamiltonian, "environment", None), type(holder)):
        hamiltonian = hamiltonian.potential
    part, scheme = hamiltonian.partition, hamiltonian.scheme
    if result is None:
        result = hamiltonian.compute(x, forces=False)
    scale = 1.0
    if hamiltonian.switching is not None:
        scale, _ = hamiltonian.switching.factors(x)
    # dE/dq_j for every environment charge: phi at the sites mapped back through the boundary scheme
    gradient = part.boundary.env_charge_gradient(np.asarray(result.site_potential) * scale)
    env = part.env_atoms
    s = holder._prepare(part, scheme)
    force_std = np.zeros(n)
    charge_std = np.zeros(n)
    if scheme == "additive":
        p = model.predict(s["env_z"], x[env], cell=s["cell"], groups=s["env_groups"], group_charges=s["group_charges"],
                          molecules=s["env_molecules"], potential=gradient, uncertainty=True)
        force_std[env] = np.linalg.norm(p.forces_std, axis=1)
        member_charges = p.member_charges
        model_atoms = np.asarray(env)
    else:
        phi = np.zeros(n)
        phi[env] = gradient
        p = model.predict(part.system.atomic_numbers, x, cell=s["cell"], groups=s["groups"],
                          group_charges=s["group_charges"], molecules=s["molecules"], potential=phi, uncertainty=True)
        force_std = np.linalg.norm(p.forces_std, axis=1)
        member_charges = p.member_charges[:, env]
        model_atoms = np.arange(n)
    charge_std[env] = member_charges.std(0)
    embedding_std = float(np.std(member_charges @ gradient))
    return Uncertainty(force_std, charge_std, embedding_std, model_atoms)
