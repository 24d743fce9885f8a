"""Enhanced sampling: collective variables, restraints on them, umbrella windows and free energies.

Folder map: `colvars` (`Distance`, `DistanceDifference`), `restraints` (`HarmonicRestraint`, `Restrained`: a
potential plus restraints), `recipes` (potentials built where a task runs), `windows` (one umbrella window,
resumable), `umbrella` (many windows in parallel), `free_energy` (MBAR profiles).  Units: Å, eV, fs, K.
"""

from .colvars import Distance, DistanceDifference
from .free_energy import FreeEnergyProfile, umbrella_free_energy
from .recipes import ConfigPotentialFactory, MLPotentialFactory
from .restraints import HarmonicRestraint, Restrained, ShellBoundaryRestraint
from .umbrella import UmbrellaSampling, run_umbrella_windows, umbrella_windows
from .windows import UmbrellaWindow, WindowSamples, run_umbrella_window

__all__ = ["Distance", "DistanceDifference", "HarmonicRestraint", "Restrained", "ShellBoundaryRestraint", "MLPotentialFactory",
           "ConfigPotentialFactory", "UmbrellaWindow", "WindowSamples", "run_umbrella_window", "UmbrellaSampling",
           "umbrella_windows", "run_umbrella_windows", "FreeEnergyProfile", "umbrella_free_energy"]
