"""The exact split (`PySCFEngine(embedding="exact")`): distant sites through Hermite-multipole series, the same
energy, forces and site potential as integrals for every site (pyscf.qmmm's way), and exact derivatives across
the split."""

import numpy as np
import pytest

import qmml
from qmml import units
from qmml.qm.field import distant_sites, series_radius, single_centre_radius

from conftest import central_difference_forces
from test_far_field import WATER, water_like_sites

HARTREE_PER_BOHR = units.HARTREE_EV / units.BOHR_A  # eV/Å


def compute(embedding, sites, charges, xyz=None, radii=None, forces=True):
    engine = qmml.PySCFEngine("hf", "6-31g*", conv_tol=1e-12, guess="default", embedding=embedding,
                              series_min_sites=0)
    elements, water = WATER
    return engine.compute(elements, water if xyz is None else xyz, site_positions=sites, site_charges=charges,
                          site_radii_A=radii, forces=forces)


@pytest.mark.parametrize("gaussian", [False, True])
def test_series_for_distant_sites_equal_integrals_for_every_site(gaussian):
    sites, charges = water_like_sites(250, 3.0, 16.0)
    radii = np.full(len(charges), 0.6) if gaussian else None
    exact, integrals = compute("exact", sites, charges, radii=radii), compute("integrals", sites, charges, radii=radii)
    from pyscf import gto

    mol = gto.M(atom=list(zip(WATER[0], WATER[1])), basis="6-31g*")
    zetas = None if radii is None else 1.0 / (radii * units.ANGSTROM_BOHR) ** 2
    distant = distant_sites(mol, sites * units.ANGSTROM_BOHR, zetas, series_radius(mol))
    n_distant = len(distant)
    assert 300 < n_distant < len(charges) - 100  # both treatments in use
    from_centre = np.linalg.norm(sites[distant] * units.ANGSTROM_BOHR - mol.atom_coords().mean(0), axis=1)
    n_single = int(np.sum(from_centre > single_centre_radius(mol, series_radius(mol))))
    assert 100 < n_single < n_distant - 100  # and both series: one per atom, one about the QM centre
    print(f"{n_distant} of {len(charges)} sites by the series; energy difference "
          f"{abs(exact.energy - integrals.energy) / units.HARTREE_EV:.1e} Eh, forces "
          f"{np.abs(exact.forces - integrals.forces).max() / HARTREE_PER_BOHR:.1e} / "
          f"{np.abs(exact.site_forces - integrals.site_forces).max() / HARTREE_PER_BOHR:.1e} Eh/Bohr")
    assert abs(exact.energy - integrals.energy) < 1e-10 * units.HARTREE_EV
    assert np.abs(exact.forces - integrals.forces).max() < 1e-8 * HARTREE_PER_BOHR
    assert np.abs(exact.site_forces - integrals.site_forces).max() < 1e-8 * HARTREE_PER_BOHR
    # what the series leave out is within their rigorous bounds, which are within the tolerances
    bounds = exact.series
    assert bounds["energy_bound_eV"] <= 1e-11 * units.HARTREE_EV
    assert abs(exact.energy - integrals.energy) <= bounds["energy_bound_eV"] + 1e-11 * units.HARTREE_EV  # + SCF noise
    assert np.abs(exact.site_forces - integrals.site_forces).max() <= bounds["site_force_bound_eV_A"] + 1e-10
    assert np.abs(exact.site_potential - integrals.site_potential).max() <= bounds["site_potential_bound_V"] + 1e-10
    assert bounds["site_force_bound_eV_A"] <= 1e-8 * HARTREE_PER_BOHR
    assert bounds["qm_force_bound_eV_A"] <= 1e-8 * HARTREE_PER_BOHR


def test_forces_across_the_split_are_derivatives_of_the_energy():
    sites, charges = water_like_sites(120, 4.0, 12.0, seed=3)
    elements, xyz = WATER
    result = compute("exact", sites, charges)

    class Moving:  # the energy as a function of the QM atoms or of the sites, for central_difference_forces
        def __init__(self, moves_sites):
            self.moves_sites = moves_sites

        def compute(self, positions, forces=False):
            return compute("exact", positions if self.moves_sites else sites, charges,
                           xyz=xyz if self.moves_sites else positions, forces=forces)

    h = 1e-4
    fd_qm = central_difference_forces(Moving(False), xyz, step_A=h)
    assert np.abs(result.forces - fd_qm).max() < 1e-5
    nearest = np.min(np.linalg.norm(sites[:, None] - xyz[None], axis=2), axis=1)
    picked = np.r_[np.argsort(np.abs(nearest - 8.0))[:3], np.argmax(nearest)]  # at the 8 Å split and far beyond
    fd_sites = central_difference_forces(Moving(True), sites, atoms=picked, step_A=h)
    assert np.abs(result.site_forces[picked] - fd_sites[picked]).max() < 1e-5, nearest[picked]
