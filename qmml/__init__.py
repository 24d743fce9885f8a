"""qmml: QM/ML multiscale simulation.

A PySCF quantum region embedded electrostatically in an environment (fixed charges or a
machine-learned potential predicting energy, forces and charges).  Public units: Å, eV, fs, amu, e, K.
"""

from .environments import FixedCharges
from .errors import InputError, PartitionError, QmmlError, SCFConvergenceError
from .hamiltonian import Hamiltonian, Result
from .partition import Partition, partition
from .qm import PySCFEngine
from .system import System, load_system

__version__ = "0.1.0"

__all__ = [
    "System", "load_system", "Partition", "partition", "PySCFEngine", "FixedCharges", "Hamiltonian", "Result",
    "QmmlError", "InputError", "PartitionError", "SCFConvergenceError",
]
