"""`LayeredEnvironment`: three layers, a QM region in an ML shell in a classical force field.

    E = E_QM[rho; Q + L in the field of q_ML (shell) and q_MM (MM atoms)]
        + E_ML(shell + caps [+ Q, as neighbours]) [- E_ML(Q + L)]       (the QM/ML scheme, as two layers)
        + E_MM(all) - E_MM(shell) - E_MM(QM)      additive              (QM atoms without MM charge or LJ)
                    - E_MM(QM + shell)            subtractive
        + E_vdW(QM, MM) [+ E_vdW(QM, shell) additive]

The ML shell and the MM layer are coupled subtractively: the force field describes every interaction
that involves an MM atom (shell-MM electrostatics with the force field's charges, bonded terms across the
ML/MM cut), the model every interaction inside the shell, with a hydrogen cap on each bond to the MM layer
(`qmml.partition.shell`).  Across a QM/ML cut the additive scheme keeps the force field's bonded terms (the
model does not see the QM region and caps the shell's side, `MLShell.qm_caps`); the subtractive one leaves
the cut to the model, which sees the QM atoms (`MMEnvironment.inner_regions`).  QM-MM electrostatics are
the QM embedding in the MM charges, counted once: the force field gives the QM atoms no charge.  QM-shell
electrostatics are the embedding in the model's environment-dependent charges.  In a periodic box the QM
region's Ewald embedding includes both.
"""

from __future__ import annotations

import numpy as np

from ..ml.model import ONE_PASS_MAX_ATOMS
from .base import Environment, EnvironmentEvaluation
from .ml import MLEnvironment
from .mm import MMEnvironment


class LayeredEnvironment(Environment):
    """An ML shell (`MLEnvironment` on the partition's shell) inside an MM layer (`MMEnvironment`).

    Parameters
    ----------
    model : EnvironmentModel
        The ML shell's model, e.g. ``qmml.load_model("organic")``.
    forcefield : qmml.mm.MMForceField
        The whole structure parameterized; partition ``forcefield.system`` with a shell
        (``partition(..., shell_radius_A=6.0)``).
    platform, threads
        OpenMM platform and CPU threads (`MMEnvironment`).
    stress : bool
        Give the MM stress in a periodic box (`MMEnvironment`); False: no stress at all.
    neighbour_skin_A, one_pass_max_atoms
        As in `MLEnvironment`.
    """

    schemes = ("additive", "subtractive")

    def __init__(self, model, forcefield, *, platform: str = "CPU", threads: int | None = None, stress: bool = True,
                 neighbour_skin_A: float = 1.0, one_pass_max_atoms: int = ONE_PASS_MAX_ATOMS):
        self.ml = MLEnvironment(model, layer="shell", neighbour_skin_A=neighbour_skin_A,
                                one_pass_max_atoms=one_pass_max_atoms)
        self.mm = MMEnvironment(forcefield, platform=platform, threads=threads, stress=stress)

    def __repr__(self) -> str:
        return f"LayeredEnvironment({self.ml!r}, {self.mm!r})"

    @property
    def model(self):
        return self.ml.model

    @model.setter
    def model(self, model) -> None:
        self.ml.model = model

    def check(self, partition, scheme: str) -> None:
        """Both layers' checks (`MLEnvironment.check`, `MMEnvironment.check`)."""
        self.ml.check(partition, scheme)
        self.mm.check(partition, scheme)

    def qm_contact_atoms(self, partition, scheme: str) -> np.ndarray:
        """The MM atoms, and the shell too in the additive scheme (see `MLEnvironment.qm_contact_atoms`)."""
        return np.union1d(self.ml.qm_contact_atoms(partition, scheme), self.mm.qm_contact_atoms(partition, scheme))

    def evaluate(self, positions: np.ndarray, partition, scheme: str = "additive", cell=None, *,
                 forces: bool = True) -> EnvironmentEvaluation:
        ml = self.ml.evaluate(positions, partition, scheme, cell=cell, forces=forces)
        mm = self.mm.evaluate(positions, partition, scheme, cell=cell, forces=forces)
        strain = None
        if ml.strain_derivative is not None and mm.strain_derivative is not None:
            def strain(gradient):
                return ml.strain_derivative(gradient) + mm.strain_derivative(gradient)
        return EnvironmentEvaluation(energy=ml.energy + mm.energy, charges=ml.charges + mm.charges,
                                     forces=lambda g: ml.forces(g) + mm.forces(g), energy_std=ml.energy_std,
                                     strain_derivative=strain)

    def committee_spread(self, positions, partition, scheme: str, charge_gradient, cell=None):
        """The ML shell's committee spreads (`MLEnvironment.committee_spread`); the MM layer has none."""
        return self.ml.committee_spread(positions, partition, scheme, charge_gradient, cell=cell)
