"""qmml: QM/ML multiscale simulation.

A PySCF quantum region embedded electrostatically in an environment (fixed charges or a
machine-learned potential predicting energy, forces and charges).  Public units: Å, eV, fs, amu, e, K.
"""

from ._version import __version__

from .environments import FixedCharges, MMEnvironment
from .environments.layered import LayeredEnvironment
from .errors import InputError, PartitionError, QmmlError, SCFConvergenceError, UnstableDynamicsError
from .hamiltonian import Hamiltonian, Result
from .md import (CollectiveVariableLog, Integrator, Langevin, MultipleTimeStep, PathIntegralLangevin, Simulation,
                 StepGuard, StochasticCellRescaling, ThermoLog, TrajectoryWriter, VelocityVerlet, read_thermo,
                 with_isotopes)
from .ml import EnvironmentModel, MLPotential, load_model
from .coupling.reference import MLReference
from .mm import MMForceField
from .partition import Partition, partition
from .potential import Potential, PotentialResult, PotentialWrapper
from .optimization import Optimization, optimize
from .parallel import make_executor, map_tasks
from .qm import PySCFEngine, QMPotential
from .sampling.restraints import HarmonicRestraint, Restrained
from .system import System, load_system
from .sampling.umbrella import run_umbrella_windows


__all__ = [
    "System", "load_system", "Partition", "partition", "Potential", "PotentialResult", "PotentialWrapper", "PySCFEngine", "QMPotential", "FixedCharges", "Hamiltonian", "Result",
    "MMEnvironment", "LayeredEnvironment", "MMForceField",
    "EnvironmentModel", "MLPotential", "MLReference", "load_model",
    "Simulation", "Integrator", "VelocityVerlet", "Langevin", "MultipleTimeStep", "ThermoLog", "TrajectoryWriter",
    "CollectiveVariableLog", "optimize", "Optimization", "Restrained", "HarmonicRestraint",
    "QmmlError", "InputError", "PartitionError", "SCFConvergenceError", "UnstableDynamicsError",
    "make_executor", "map_tasks", "run_umbrella_windows",
    "PathIntegralLangevin", "with_isotopes", "StochasticCellRescaling", "read_thermo", "StepGuard",
]
