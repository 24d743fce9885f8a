"""Classical force fields through OpenMM: the MM layer of QM/MM and QM/ML/MM (layer 1, `qmml.mm.forcefield`)."""

from .forcefield import DEFAULT_FORCEFIELD, GhostResidue, MMContext, MMForceField, without_inner

__all__ = ["DEFAULT_FORCEFIELD", "GhostResidue", "MMContext", "MMForceField", "without_inner"]
