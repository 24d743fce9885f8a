"""Boundary charge schemes: total charge always conserved; RCD and shift keep the bond dipoles."""

import numpy as np
import pytest

import qmml
from qmml.partition import SCHEMES

QM = "name C4 O1 H41 H42 HO1"  # cut C3-C4: M1 = C3 (atom 2), M2 = C2, H31, H32 (atoms 1, 10, 11)


def site_distribution(part, positions):
    q = part.env_topology_charges
    return part.boundary.site_positions(positions), part.boundary.site_charges(q)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_conserves_total_charge(butanol, scheme):
    part = qmml.partition(butanol, QM, charge=0, boundary=scheme)
    _, q_sites = site_distribution(part, butanol.positions)
    assert q_sites.sum() == pytest.approx(part.env_topology_charges.sum(), abs=1e-12)
    # for any charges, not just these: every column of the charge map sums to one
    np.testing.assert_allclose(np.asarray(part.boundary.charge_map.sum(axis=0)).ravel(), 1.0, atol=1e-12)


@pytest.mark.parametrize("scheme, keeps_dipole", [("rcd", True), ("shift", True), ("rc", False), ("z1", False)])
def test_bond_dipoles(butanol, scheme, keeps_dipole):
    """RCD and charge shift keep every M1-M2 bond dipole, so the total dipole of the environment charges
    is unchanged; RC and Z1 move charge without compensating, so it changes."""
    part = qmml.partition(butanol, QM, charge=0, boundary=scheme)
    sites, q_sites = site_distribution(part, butanol.positions)
    original = part.env_topology_charges @ butanol.positions[part.env_atoms]
    assert np.allclose(q_sites @ sites, original, atol=1e-10) == keeps_dipole


def test_m1_charge_is_removed_and_placed_per_scheme(butanol):
    q_m1 = None
    for scheme in ("z1", "z2", "rc", "rcd"):
        part = qmml.partition(butanol, QM, charge=0, boundary=scheme)
        env = list(part.env_atoms)
        q_m1 = part.env_topology_charges[env.index(2)]
        _, q_sites = site_distribution(part, butanol.positions)
        assert q_sites[env.index(2)] == 0.0
        if scheme == "z2":
            assert all(q_sites[env.index(a)] == 0.0 for a in (1, 10, 11))
        if scheme in ("rc", "rcd"):
            extra = q_sites[len(env):]
            assert len(extra) == 3  # one site per M1-M2 bond, at its midpoint
            np.testing.assert_allclose(extra, (2.0 if scheme == "rcd" else 1.0) * q_m1 / 3)
            sites, _ = site_distribution(part, butanol.positions)
            np.testing.assert_allclose(sites[len(env)], 0.5 * (butanol.positions[2] + butanol.positions[1]))


def test_zeroing_schemes_refuse_when_nothing_is_left_to_carry_the_charge(butanol):
    """QM = all but the methyl group: Z2 would zero C1 and its three H, the whole environment."""
    qm = "not name C1 H11 H12 H13"
    with pytest.raises(qmml.PartitionError, match="boundary='z2' would zero every environment charge; use 'rcd'"):
        qmml.partition(butanol, qm, charge=0, boundary="z2")
    # z1 keeps the group's charge on its hydrogens
    part = qmml.partition(butanol, qm, charge=0, boundary="z1")
    assert part.boundary.site_charges(part.env_topology_charges).sum() == pytest.approx(
        part.env_topology_charges.sum(), abs=1e-12)
