"""Analysis of qmml runs: energy drift, structure (RDF, hydrogen bonds), transport and mechanical properties.

Public units: Å, fs, eV, e, K.  Trajectory analyses take an MDAnalysis Universe (``qmml.load_system``
keeps one, or ``MDAnalysis.Universe(topology, trajectory)``); array functions take plain arrays.
"""

from .elastic import (ElasticConstants, EquationOfState, birch_murnaghan_fit, bulk_modulus_from_elastic,
                      bulk_modulus_from_volume_fluctuations, elastic_constants, equation_of_state)
from .energy import EnergyDrift, energy_drift
from ..sampling.free_energy import FreeEnergyProfile, umbrella_free_energy
from .reweighting import Reweighted, reweight
from .hbonds import HydrogenBonds, hydrogen_bonds
from .structure import radial_distribution
from .transport import (Conductivity, Diffusion, current_autocorrelation, diffusion_coefficient,
                        green_kubo_conductivity, mean_squared_displacement, msd_all_origins, yeh_hummer_correction)

__all__ = ["EnergyDrift", "energy_drift", "FreeEnergyProfile", "umbrella_free_energy", "radial_distribution", "HydrogenBonds", "hydrogen_bonds", "mean_squared_displacement", "Diffusion",
           "diffusion_coefficient", "current_autocorrelation", "Conductivity", "green_kubo_conductivity", "msd_all_origins", "yeh_hummer_correction",
           "ElasticConstants", "EquationOfState", "elastic_constants", "equation_of_state", "birch_murnaghan_fit",
           "bulk_modulus_from_elastic", "bulk_modulus_from_volume_fluctuations", "Reweighted", "reweight"]
