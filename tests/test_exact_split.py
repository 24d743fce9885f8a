"""The exact split (`PySCFEngine(embedding="exact")`): distant sites through Hermite-multipole series, the same
energy, forces and site potential as integrals for every site (pyscf.qmmm's way), and exact derivatives across
the split."""

import numpy as np
import pytest

import qmml
from qmml import units
from qmml.qm.field import distant_sites, series_radius

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
    n_distant = len(distant_sites(mol, sites * units.ANGSTROM_BOHR, zetas, series_radius(mol)))
    assert 300 < n_distant < len(charges) - 100  # both treatments in use
    print(f"{n_distant} of {len(charges)} sites by the series; energy difference "
          f"{abs(exact.energy - integrals.energy) / units.HARTREE_EV:.1e} Eh, forces "
          f"{np.abs(exact.forces - integrals.forces).max() / HARTREE_PER_BOHR:.1e} / "
          f"{np.abs(exact.site_forces - integrals.site_forces).max() / HARTREE_PER_BOHR:.1e} Eh/Bohr")
    assert abs(exact.energy - integrals.energy) < 1e-10 * units.HARTREE_EV
    assert np.abs(exact.forces - integrals.forces).max() < 1e-8 * HARTREE_PER_BOHR
    assert np.abs(exact.site_forces - integrals.site_forces).max() < 1e-8 * HARTREE_PER_BOHR
    assert np.abs(exact.site_potential - integrals.site_potential).max() < 1e-9


def test_forces_across_the_split_are_derivatives_of_the_energy():
    sites, charges = water_like_sites(120, 4.0, 12.0, seed=3)
    elements, xyz = WATER
    result = compute("exact", sites, charges)

    def energy(x, s):
        return compute("exact", s, charges, xyz=x, forces=False).energy

    h = 1e-4
    for atom, k in [(0, 0), (1, 1), (2, 2)]:
        xp, xm = xyz.copy(), xyz.copy()
        xp[atom, k] += h
        xm[atom, k] -= h
        assert result.forces[atom, k] == pytest.approx(-(energy(xp, sites) - energy(xm, sites)) / (2 * h), abs=1e-5)
    nearest = np.min(np.linalg.norm(sites[:, None] - xyz[None], axis=2), axis=1)
    split = 8.0
    for j in np.r_[np.argsort(np.abs(nearest - split))[:3], np.argmax(nearest)]:  # at the split and far beyond
        for k in range(3):
            sp, sm = sites.copy(), sites.copy()
            sp[j, k] += h
            sm[j, k] -= h
            fd = -(energy(xyz, sp) - energy(xyz, sm)) / (2 * h)
            assert result.site_forces[j, k] == pytest.approx(fd, abs=1e-5), (j, nearest[j])
