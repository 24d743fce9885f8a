"""Partitioner: cut bonds, link atoms, refusals (message text checked) and topology charges."""

import numpy as np
import pytest

import qmml
from qmml.elements import bond_length_A


def test_link_atom_sits_at_the_c_h_length_along_the_cut_bond(butanol):
    """The cap lies on the cut C-C bond (1.49 Å in this structure, not the tabulated 1.526) at the C-H length."""
    part = qmml.partition(butanol, "name C4 O1 H41 H42 HO1", charge=0)
    (link,) = part.links
    assert (link.q1, link.m1) == (3, 2)
    centres = part.qm_positions(butanol.positions)
    r_q1, r_m1 = butanol.positions[3], butanol.positions[2]
    np.testing.assert_allclose(centres[-1], r_q1 + link.g * (r_m1 - r_q1))
    assert np.linalg.norm(centres[-1] - r_q1) == pytest.approx(bond_length_A("C", "H"), abs=1e-12)
    assert 0.70 < link.g < 0.75
    assert part.qm_elements == ["C", "O", "H", "H", "H", "H"]
    # the force on the link atom goes (1-g) to Q1 and g to M1
    f = np.zeros((len(centres), 3))
    f[-1] = [1.0, 2.0, 3.0]
    atom_forces = part.qm_atom_forces(f)
    np.testing.assert_allclose(atom_forces[3], (1 - link.g) * f[-1])
    np.testing.assert_allclose(atom_forces[2], link.g * f[-1])


def test_a_cut_bond_that_is_no_bond_in_the_structure_gets_no_cap(butanol):
    """A C-C bond of the bond list stretched to 2.6 Å (a wrong bond list, a broken structure) is refused, naming it;
    a fixed g still places the link."""
    from qmml.errors import PartitionError

    positions = butanol.positions.copy()
    positions[:3] += 1.2 * (positions[2] - positions[3]) / np.linalg.norm(positions[2] - positions[3])
    stretched = butanol.with_positions(positions)
    with pytest.raises(PartitionError, match=r"atom 3 \(C4, BUOH 1\) - atom 2 \(C3, BUOH 1\) is 2.\d+ Å long"):
        qmml.partition(stretched, "name C4 O1 H41 H42 HO1", charge=0)
    assert qmml.partition(stretched, "name C4 O1 H41 H42 HO1", charge=0, link=0.72).links[0].g == 0.72


def test_report_names_cut_bond_link_and_charges(butanol):
    part = qmml.partition(butanol, "name C4 O1 H41 H42 HO1", charge=0)
    text = part.report()
    assert "atom 3 (C4, BUOH 1) - atom 2 (C3, BUOH 1)" in text
    assert f"g = {part.links[0].g:.4f}" in text
    assert "5 atoms + 1 link atom (CH4O)" in text and "18 electrons" in text
    assert "topology charge of QM atoms: -0.0400 e" in text


def test_non_integer_environment_charge_is_fixed_and_reported(butanol):
    part = qmml.partition(butanol, "name C4 O1 H41 H42 HO1", charge=0)
    assert part.env_topology_charges.sum() == pytest.approx(0.0, abs=1e-12)
    assert any("summed to +0.0400 e; -0.0400 e was spread evenly over 10 atoms" in note for note in part.notes)
    assert "was spread evenly" in part.report()


def test_polar_cut_refused_with_override(butanol):
    with pytest.raises(qmml.PartitionError, match=r"cuts a polar O-C bond between atom 4 \(O1.*allow_polar_cuts=True"):
        qmml.partition(butanol, "name O1 HO1", charge=0)
    part = qmml.partition(butanol, "name O1 HO1", charge=0, allow_polar_cuts=True)
    assert [(lk.q1, lk.m1) for lk in part.links] == [(4, 3)]


def test_double_bond_cut_refused_with_override():
    # propene CH2=CH-CH3 with the QM region = CH2= : cutting the C=C bond
    elements = ["C", "C", "C", "H", "H", "H", "H", "H", "H"]
    xyz = [[0, 0, 0], [1.34, 0, 0], [2.1, 1.3, 0], [-0.55, 0.93, 0], [-0.55, -0.93, 0], [1.9, -0.95, 0],
           [3.1, 1.1, 0], [1.9, 1.9, 0.9], [1.9, 1.9, -0.9]]
    bonds = [(0, 1), (1, 2), (0, 3), (0, 4), (1, 5), (2, 6), (2, 7), (2, 8)]
    system = qmml.System.from_arrays(elements, xyz, bonds=bonds)
    with pytest.raises(qmml.PartitionError, match="double or aromatic C-C bond.*allow_multiple_bond_cuts=True"):
        qmml.partition(system, [0, 3, 4], charge=0)
    assert len(qmml.partition(system, [0, 3, 4], charge=0, multiplicity=2, allow_multiple_bond_cuts=True).links) == 1
    # the single bond next to it is fine
    assert len(qmml.partition(system, [0, 1, 3, 4, 5], charge=0).links) == 1


def test_two_links_on_one_qm_atom_refused_with_override(butanol):
    with pytest.raises(qmml.PartitionError, match=r"atom 2 \(C3, BUOH 1\) would carry 2 link atoms.*allow_multiple_links"):
        qmml.partition(butanol, "name C3 H31 H32", charge=0)
    part = qmml.partition(butanol, "name C3 H31 H32", charge=0, allow_multiple_links=True)
    assert len(part.links) == 2


def test_electron_count_must_match_multiplicity(butanol):
    with pytest.raises(qmml.PartitionError, match="has 17 electrons at charge \\+1, which cannot have multiplicity 1"):
        qmml.partition(butanol, "name C4 O1 H41 H42 HO1", charge=1)
    assert qmml.partition(butanol, "name C4 O1 H41 H42 HO1", charge=1, multiplicity=2).n_electrons == 17


def test_empty_and_whole_selections_refused(butanol):
    with pytest.raises(qmml.PartitionError, match="selects no atom"):
        qmml.partition(butanol, "name XX", charge=0)
    with pytest.raises(qmml.PartitionError, match="takes all 15 atoms, leaving no environment"):
        qmml.partition(butanol, "all", charge=0)


def test_bad_selection_syntax_and_missing_bonds_are_clear():
    system = qmml.System.from_arrays(["O", "H", "H"], [[0, 0, 0], [0, 0.76, 0.59], [0, -0.76, 0.59]])
    with pytest.raises(qmml.PartitionError, match="no bond information.*guess_bonds=True"):
        qmml.partition(system, [0], charge=0)
    with pytest.raises(qmml.InputError, match="not valid MDAnalysis syntax"):
        system.select("name O and and")


def test_buffer_and_residue_completion():
    # two waters 2.8 Å apart and a third far away
    xyz = [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0], [2.8, 0, 0], [3.1, 0.9, 0], [3.1, -0.9, 0],
           [20, 0, 0], [20.96, 0, 0], [19.76, 0.93, 0]]
    bonds = [(0, 1), (0, 2), (3, 4), (3, 5), (6, 7), (6, 8)]
    system = qmml.System.from_arrays(["O", "H", "H"] * 3, xyz, bonds=bonds, residues=[1, 1, 1, 2, 2, 2, 3, 3, 3])
    part = qmml.partition(system, "resid 1", charge=0, buffer_A=2.0, complete="residue")
    assert part.qm_atoms.tolist() == [0, 1, 2, 3, 4, 5]
    part = qmml.partition(system, [0], charge=0, complete="molecule")
    assert part.qm_atoms.tolist() == [0, 1, 2] and not part.links
