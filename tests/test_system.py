"""Reading structures through MDAnalysis: every format gives the same atoms, bonds only from topology."""

import numpy as np
import pytest

import qmml
from conftest import STRUCTURES

FORMATS = {
    "pdb": (("butanol.pdb",), True, False),
    "psf": (("butanol.psf", "butanol.pdb"), True, True),
    "prmtop": (("butanol.prmtop", "butanol.pdb"), True, True),
    "gro": (("butanol.gro",), False, False),
    "xyz": (("butanol.xyz",), False, False),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_the_same_molecule(fmt):
    files, has_bonds, has_charges = FORMATS[fmt]
    system = qmml.load_system(*(STRUCTURES / f for f in files))
    reference = qmml.load_system(STRUCTURES / "butanol.pdb")
    assert system.n_atoms == 15
    assert list(system.elements) == ["C"] * 4 + ["O"] + ["H"] * 10
    assert system.positions.dtype == np.float64
    np.testing.assert_allclose(system.positions, reference.positions, atol=5e-3)  # GRO keeps 0.01 Å
    np.testing.assert_allclose(system.masses[:5], [12.011] * 4 + [15.999], atol=1e-3)
    assert (system.bonds is not None) == has_bonds
    if has_bonds:
        assert len(system.bonds) == 14
    assert (system.charges is not None) == has_charges
    if has_charges:
        assert system.charges.sum() == pytest.approx(0.0, abs=1e-9)
        assert system.charges[4] == pytest.approx(-0.683)


def test_bonds_guessed_only_when_asked():
    assert qmml.load_system(STRUCTURES / "butanol.xyz").bonds is None
    guessed = qmml.load_system(STRUCTURES / "butanol.xyz", guess_bonds=True)
    topology = qmml.load_system(STRUCTURES / "butanol.pdb")
    assert sorted(map(tuple, guessed.bonds)) == sorted(map(tuple, topology.bonds))


def test_gro_box_and_residues():
    system = qmml.load_system(STRUCTURES / "butanol.gro")
    np.testing.assert_allclose(system.box, [30, 30, 30, 90, 90, 90])
    assert set(system.resnames) == {"BUOH"}


def test_from_arrays_and_selection():
    system = qmml.System.from_arrays(["o", "H", "H"], [[0, 0, 0], [0, 0.76, 0.59], [0, -0.76, 0.59]],
                                     bonds=[(0, 1), (2, 0)], residues=[5, 5, 5], resnames=["HOH"] * 3)
    assert list(system.elements) == ["O", "H", "H"]
    assert system.bonds.tolist() == [[0, 1], [0, 2]]
    assert system.select("resname HOH and name H").tolist() == [1, 2]
    assert system.select([2, 0]).tolist() == [0, 2]


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(qmml.InputError, match="missing.pdb: no such file"):
        qmml.load_system(tmp_path / "missing.pdb")
    with pytest.raises(qmml.InputError, match="unknown element symbol 'Xx'"):
        qmml.System.from_arrays(["Xx"], [[0, 0, 0]])
    with pytest.raises(qmml.InputError, match=r"positions have shape \(1, 3\), expected \(2, 3\)"):
        qmml.System.from_arrays(["H", "H"], [[0, 0, 0]])
    with pytest.raises(qmml.InputError, match="charges has 1 entries for 2 atoms"):
        qmml.System.from_arrays(["H", "H"], [[0, 0, 0], [0, 0, 0.74]], charges=[0.1])
