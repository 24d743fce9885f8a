"""Far-field embedding: multipole expansion of the QM electrons for distant sites (qmml.qm.far_field).

The approximate energy must have exact forces (finite differences), stay within the documented error
bound of the exact embedding, converge as the cutoff grows, and be smooth across the blending shell.
"""

import numpy as np
import pytest

import qmml
from qmml.errors import InputError

WATER = (["O", "H", "H"], np.array([[0.0, 0.0, 0.0], [0.76, 0.58, 0.0], [-0.76, 0.58, 0.0]]))


def water_like_sites(n_molecules, r_min, r_max, seed=1):
    """Neutral three-site 'waters' (-0.8, +0.4, +0.4 e) at random orientations r_min..r_max Å from the origin."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n_molecules, 3))
    centres = directions / np.linalg.norm(directions, axis=1)[:, None] * rng.uniform(r_min, r_max, (n_molecules, 1))
    sites, charges = [], []
    for centre in centres:
        frame = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        oh1 = 0.96 * frame[0]
        oh2 = 0.96 * (np.cos(1.82) * frame[0] + np.sin(1.82) * frame[1])
        sites += [centre, centre + oh1, centre + oh2]
        charges += [-0.8, 0.4, 0.4]
    return np.array(sites), np.array(charges)


def engine(far_field_A=None, **kwargs):
    return qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-12, guess="default", far_field_A=far_field_A, **kwargs)


def test_far_field_forces_are_exact_derivatives_of_its_energy():
    sites, charges = water_like_sites(60, 4.0, 14.0)
    qm = engine(9.0, far_field_width_A=2.0)
    elements, xyz = WATER
    result = qm.compute(elements, xyz, site_positions=sites, site_charges=charges)
    assert result.far_field["n_exact"] > 0 and result.far_field["n_expanded"] > 0

    def energy(x, s):
        return qm.compute(elements, x, site_positions=s, site_charges=charges, forces=False).energy

    h = 1e-4
    for atom in range(3):
        for k in range(3):
            xp, xm = xyz.copy(), xyz.copy()
            xp[atom, k] += h
            xm[atom, k] -= h
            fd = -(energy(xp, sites) - energy(xm, sites)) / (2 * h)
            assert result.forces[atom, k] == pytest.approx(fd, abs=1e-5)
    distance = np.linalg.norm(sites - xyz.mean(axis=0), axis=1)
    blending = np.argsort(np.abs(distance - 8.0))[:3]  # inside the 7-9 Å blend
    expanded = np.argsort(-distance)[:2]
    for j in np.r_[blending, expanded]:
        for k in range(3):
            sp, sm = sites.copy(), sites.copy()
            sp[j, k] += h
            sm[j, k] -= h
            fd = -(energy(xyz, sp) - energy(xyz, sm)) / (2 * h)
            assert result.site_forces[j, k] == pytest.approx(fd, abs=1e-6), (j, distance[j])


@pytest.mark.parametrize("basis", ["sto-3g", "6-31g*"])
def test_far_field_error_within_bound_and_shrinks_with_cutoff(basis):
    sites, charges = water_like_sites(150, 4.0, 20.0, seed=2)
    elements, xyz = WATER
    kwargs = dict(site_positions=sites, site_charges=charges)
    exact = qmml.PySCFEngine("hf", basis, conv_tol=1e-11, guess="default").compute(elements, xyz, **kwargs)
    errors = []
    for cutoff in (8.0, 12.0, 16.0):
        far = qmml.PySCFEngine("hf", basis, conv_tol=1e-11, guess="default", far_field_A=cutoff).compute(
            elements, xyz, **kwargs)
        error = abs(far.energy - exact.energy)
        print(f"{basis} cutoff {cutoff} Å: |dE| {error:.2e} eV, estimate {far.far_field['error_estimate_eV']:.2e}, "
              f"bound {far.far_field['error_bound_eV']:.2e}")
        assert error <= far.far_field["error_bound_eV"]
        # the first neglected term is the size of the error
        assert error < 3 * far.far_field["error_estimate_eV"] + 1e-6
        errors.append(error)
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < 1e-4


def test_far_field_beyond_every_site_is_the_exact_embedding():
    sites, charges = water_like_sites(20, 4.0, 8.0)
    elements, xyz = WATER
    kwargs = dict(site_positions=sites, site_charges=charges)
    exact = engine().compute(elements, xyz, **kwargs)
    far = engine(30.0).compute(elements, xyz, **kwargs)
    assert far.far_field["n_expanded"] == 0
    assert far.energy == pytest.approx(exact.energy, abs=1e-9)
    np.testing.assert_allclose(far.site_forces, exact.site_forces, atol=1e-9)


def test_far_field_cutoff_inside_the_qm_density_is_refused():
    sites, charges = water_like_sites(5, 4.0, 8.0)
    elements, xyz = WATER
    with pytest.raises(InputError, match="far_field_A"):
        engine(3.0, far_field_width_A=1.0).compute(elements, xyz, site_positions=sites, site_charges=charges)
    with pytest.raises(InputError, match="far_field_width_A"):
        engine(2.0, far_field_width_A=3.0)


def test_hamiltonian_forces_with_far_field_and_ml_charges_match_finite_differences():
    """Through the whole stack: ML charges (charge response via the blended site potential) + far field."""
    from conftest import central_difference_forces, water_cluster

    system = water_cluster(20)
    part = qmml.partition(system, np.where(system.resids == 1)[0], charge=0, boundary="none")
    qm = qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-11, far_field_A=6.5, far_field_width_A=1.5)
    ham = qmml.Hamiltonian(part, qm, qmml.load_model("water"))
    result = ham.compute(system.positions)
    info = qm.compute(part.qm_elements, part.qm_positions(system.positions),
                      site_positions=part.boundary.site_positions(system.positions),
                      site_charges=result.site_charges, forces=False).far_field
    assert info["n_expanded"] > 10 and info["n_exact"] > 10
    fd = central_difference_forces(ham, system.positions, step_A=2e-4)
    assert np.abs(fd - result.forces).max() < 1e-4
