"""How the QM region and its environment meet beyond the embedding: the QM-environment Lennard-Jones term
(`vdw`), smooth switching of embedding charges and the one switch function of qmml (`switching`), and the
cheap ML reference of a QM/ML Hamiltonian for multiple time steps and contracted path integrals
(`reference.MLReference`, also `qmml.MLReference`; not imported here, it sits above the environments).
"""

from .switching import ChargeSwitching, switch
from .vdw import LennardJones

__all__ = ["LennardJones", "ChargeSwitching", "switch"]
