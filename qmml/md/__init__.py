"""Molecular dynamics: state, integrators (B/A/O sub-steps, barostat C), reporters, checkpoints, the simulation
driver."""

from .barostat import StochasticCellRescaling
from .checkpoint import read_checkpoint, write_checkpoint
from .guard import StepGuard
from .integrators import Integrator, Langevin, MultipleTimeStep, VelocityVerlet
from .pimd import PathIntegralLangevin, with_isotopes
from .plot import plot_thermo, read_thermo
from .reporters import CollectiveVariableLog, Reporter, ThermoLog, TrajectoryWriter
from .simulation import Simulation
from .state import MDState, kinetic_energy, maxwell_boltzmann, temperature

__all__ = ["MDState", "Integrator", "VelocityVerlet", "Langevin", "MultipleTimeStep", "Simulation", "Reporter", "ThermoLog", "CollectiveVariableLog",
           "TrajectoryWriter", "read_checkpoint", "write_checkpoint", "plot_thermo", "read_thermo",
           "kinetic_energy", "maxwell_boltzmann", "temperature", "PathIntegralLangevin", "with_isotopes",
           "StochasticCellRescaling", "StepGuard"]
