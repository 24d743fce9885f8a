"""The explicit D3(BJ) dispersion term: exact forces and strain derivative, periodic invariance, the long-range
tail, the environment model with the term, model files, and agreement with simple-dftd3 and dftd4."""

import json
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from qmml import units
from qmml.errors import InputError
from qmml.ml import D3Dispersion, Dataset, EnvironmentModel, ModelFileError, load_model, save_model
from conftest import DATA, finite_difference_forces, finite_strain_derivative

SHEAR = np.array([[1.0, 0.0, 0.0], [0.1, 1.0, 0.0], [-0.05, 0.08, 1.0]])


@pytest.fixture(scope="module")
def disp(box):
    """D3 coefficients at the coordination numbers of the test box's waters."""
    z, x, _ = box
    return D3Dispersion.fitted([(z, x)])


@pytest.fixture(scope="module")
def box():
    """16 GFN2-xTB-sampled waters (7.82 Å cube) sheared into a triclinic cell."""
    frame = next(f for f in Dataset.load(DATA / "datasets" / "water_test.npz") if f.cell is not None)
    z, x, cell = np.asarray(frame.elements), np.asarray(frame.positions), np.asarray(frame.cell)
    return z, x @ SHEAR.T, cell @ SHEAR.T


def fd_forces(energy, x, atoms):
    return finite_difference_forces(energy, x, atoms, step=1e-4)


@pytest.mark.parametrize("periodic", [False, True], ids=["open", "triclinic"])
def test_forces_are_the_gradient_of_the_energy(box, disp, periodic):
    z, x, cell = box
    if periodic:
        atoms = [0, 1, 2, 20, 47]  # the 10 Å cutoff sums over many images of this 7.8 Å cell
    else:  # 8 waters in open boundaries, every atom
        z, x, cell, atoms = z[:24], x[:24], None, list(range(24))
    e, f, strain = disp.compute(z, x, cell)
    assert (strain is None) == (cell is None) and f.shape == x.shape and e < 0
    fd = fd_forces(lambda xx: disp.energy(z, xx, cell), x, atoms)
    # dispersion forces are small (at most ~6e-3 eV/Å here): a tolerance far below them
    assert np.abs(fd - f[atoms]).max() < 1e-7
    assert np.abs(f.sum(0)).max() < 1e-10  # no net force: translation invariance


def test_strain_derivative_is_the_finite_strain_derivative(box, disp):
    z, x, cell = box
    _, _, strain = disp.compute(z, x, cell)
    fd = finite_strain_derivative(lambda d: disp.energy(z, x @ d, cell @ d))
    assert np.abs(fd - strain).max() < 1e-7
    assert np.trace(strain) > 0  # dispersion pulls the box together: negative pressure -tr/3V
    # the switched cutoff keeps the energy continuous where a hard one jumps as a pair crosses it
    hard = replace(disp, switch_width_A=0.0, tail=False)
    for term, jumps in ((disp, False), (hard, True)):
        e_in, e_out = (term.energy(np.array([8, 8]), np.array([[0.0, 0, 0], [term.cutoff_A + d, 0, 0]]))
                       for d in (-1e-7, 1e-7))
        assert (abs(e_in - e_out) > 1e-6) == jumps


def test_energy_is_invariant_to_lattice_translations(box, disp):
    z, x, cell = box
    e, f, s = disp.compute(z, x, cell)
    moved = x.copy()
    moved[3:6] += cell[0] - 2 * cell[2]  # one molecule to another image
    e2, f2, s2 = disp.compute(z, moved, cell)
    assert e2 == pytest.approx(e, abs=1e-10) and np.allclose(f2, f, atol=1e-10) and np.allclose(s2, s, atol=1e-9)
    # the same lattice described by other vectors
    e3 = disp.energy(z, x, np.array([cell[0], cell[1] + cell[0], cell[2] - cell[1]]))
    assert e3 == pytest.approx(e, abs=1e-10)


def model_pair(disp, **kw):
    torch.manual_seed(0)
    with_d = EnvironmentModel([1, 8], cutoff=5.0, n_members=2, dispersion=disp, **kw).double()
    without = EnvironmentModel([1, 8], cutoff=5.0, n_members=2, **kw).double()
    without.load_state_dict(with_d.state_dict())
    return with_d, without


def test_model_adds_the_term_with_exact_forces_and_strain(box, disp):
    z, x, cell = box
    model, bare = model_pair(disp)
    groups = np.repeat(np.arange(len(z) // 3), 3)
    groups[:3] = -1  # a QM molecule: no charge, but it takes part in dispersion
    p = model.predict(z, x, cell=cell, groups=groups)
    p0 = bare.predict(z, x, cell=cell, groups=groups)
    e_d, f_d, s_d = model.dispersion.compute(z, x, cell)
    assert p.energy == pytest.approx(p0.energy + e_d, abs=1e-10)
    assert np.allclose(p.member_energies, p0.member_energies + e_d, atol=1e-10)
    assert p.energy_std == pytest.approx(p0.energy_std, abs=1e-10)  # the spread is the networks' alone
    assert np.allclose(p.forces, p0.forces + f_d, atol=1e-10) and np.allclose(p.charges, p0.charges)
    assert np.allclose(p.strain_derivative, p0.strain_derivative + s_d, atol=1e-10)

    def energy(xx, cc=cell):
        return model.predict(z, xx, cell=cc, groups=groups, forces=False).energy

    atoms = [1, 4, 30]
    assert np.abs(fd_forces(energy, x, atoms) - p.forces[atoms]).max() < 1e-5
    fd = finite_strain_derivative(lambda d: energy(x @ d, cell @ d))
    assert np.abs(fd - p.strain_derivative).max() < 1e-5
    # open boundaries: no strain derivative, the open-boundary term
    q = model.predict(z[:24], x[:24], groups=groups[:24])
    assert q.strain_derivative is None
    assert q.energy == pytest.approx(bare.predict(z[:24], x[:24], groups=groups[:24]).energy
                                     + model.dispersion.energy(z[:24], x[:24]), abs=1e-10)
    # copies keep the term; an energy mask cannot split a pair energy
    one = model.select_members([1])
    assert one.dispersion == model.dispersion
    assert one.predict(z, x, cell=cell, groups=groups, forces=False).energy == pytest.approx(p.member_energies[1])
    with pytest.raises(InputError, match="energy_mask"):
        model.predict(z, x, cell=cell, groups=groups, energy_mask=np.arange(len(z)) > 2)
    assert model.predict(z, x, cell=cell, groups=groups, energy_mask=np.ones(len(z), bool)).energy == \
        pytest.approx(p.energy, abs=1e-12)
    coulomb, _ = model_pair(disp, coulomb_cutoff=6.0)
    assert coulomb.with_coulomb("ewald").dispersion == disp


def test_model_file_keeps_the_dispersion_term(box, disp, tmp_path):
    z, x, cell = box
    custom = disp.with_parameters(s8=1.2, a1=0.4, a2=4.8, cutoff_A=12.0, switch_width_A=1.5)
    torch.manual_seed(1)
    model = EnvironmentModel([1, 8], cutoff=4.0, n_radial=6, n_channels=4, hidden=(8,), dispersion=custom).double()
    path = save_model(model, tmp_path / "d.pt", reference="test")
    loaded = load_model(path, device="cpu")
    assert loaded.dispersion == custom and loaded.config() == model.config()
    p1, p2 = model.predict(z, x, cell=cell), loaded.predict(z, x, cell=cell)
    assert p1.energy == p2.energy and np.array_equal(p1.forces, p2.forces)
    header = json.loads(path.with_suffix(".json").read_text())
    assert header["architecture"]["dispersion"]["cutoff_A"] == 12.0
    # a file written before the option has no "dispersion" key: no term
    blob = torch.load(path, weights_only=True)
    head = json.loads(blob["header"])
    del head["architecture"]["dispersion"]
    torch.save(dict(blob, header=json.dumps(head)), tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt", device="cpu").dispersion is None
    head["architecture"]["dispersion"] = {"form": "d4-ats", "s8": 1.0}
    torch.save(dict(blob, header=json.dumps(head)), tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match="dispersion"):
        load_model(tmp_path / "bad.pt")


def test_fixed_coefficients_reproduce_simple_dftd3_and_the_tail_replaces_the_far_pairs(disp):
    """Against simple-dftd3's own sum (coordination-dependent C6, 40 Å) on the 128-water box: the fixed table
    and the homogeneous tail give its energy and pressure; the tail stands in for pairs beyond the cutoff."""
    dftd3 = pytest.importorskip("dftd3.interface")
    import MDAnalysis as mda

    u = mda.Universe(str(DATA / "structures" / "water_box.pdb"))
    z = np.where(np.char.startswith(u.atoms.names.astype(str), "O"), 8, 1)
    x, cell = u.atoms.positions.astype(float), np.diag(u.dimensions[:3]).astype(float)
    volume = abs(np.linalg.det(cell))
    b = units.ANGSTROM_BOHR
    model = dftd3.DispersionModel(z, x * b, cell * b, np.ones(3, bool))
    model.set_realspace_cutoff(40 * b, 40 * b, 40 * b)
    res = model.get_dispersion(dftd3.RationalDampingParam(s6=disp.s6, s8=disp.s8, s9=0.0, a1=disp.a1, a2=disp.a2), True)
    e_ref = float(res["energy"]) * units.HARTREE_EV
    p_ref = -np.trace(res["virial"]) * units.HARTREE_EV / 3 / volume * units.EV_PER_A3_GPA * 10  # kbar

    def pressure(w):
        return -np.trace(w) / 3 / volume * units.EV_PER_A3_GPA * 10

    e, f, w = disp.compute(z, x, cell)
    assert e == pytest.approx(e_ref, rel=2e-3) and abs(pressure(w) - p_ref) < 0.1
    far = disp.with_parameters(cutoff_A=30.0).compute(z, x, cell)  # its tail is 0.4 % of this one's
    assert abs(e - far[0]) < 0.01 and abs(pressure(w) - pressure(far[2])) < 0.01 and np.abs(f - far[1]).max() < 1e-3
    no_tail = disp.with_parameters(tail=False).compute(z, x, cell)
    assert abs(pressure(no_tail[2]) - pressure(far[2])) > 0.05  # without the tail the 10 Å sum misses it
    print(f"128 waters: {e:.4f} eV, {pressure(w):.3f} kbar; simple-dftd3 (40 Å, C6(CN)) {e_ref:.4f} eV, "
          f"{p_ref:.3f} kbar; 30 Å {far[0]:.4f} eV, {pressure(far[2]):.3f} kbar")


def test_close_to_dftd4_two_body_with_the_same_damping(box, disp):
    """D4 (the dispersion inside GFN2-xTB) has charge-dependent C6: within 5 % of D3 for liquid water."""
    dftd4 = pytest.importorskip("dftd4.interface")
    z, x, cell = box
    b = units.ANGSTROM_BOHR
    model = dftd4.DispersionModel(z, x * b, lattice=cell * b, periodic=np.ones(3, bool))
    model.set_realspace_cutoff(30 * b, 30 * b, 30.0 * b)
    param = dftd4.DampingParam(s6=disp.s6, s8=disp.s8, s9=0.0, a1=disp.a1, a2=disp.a2)
    e4 = float(model.get_dispersion(param, grad=False)["energy"]) * units.HARTREE_EV
    e3 = disp.energy(z, x, cell)
    assert e3 == pytest.approx(e4, rel=0.05)
    print(f"16 waters: D3 {e3:.4f} eV, D4 two-body {e4:.4f} eV ({e3 / e4 - 1:+.1%})")


def test_clear_errors(box, disp, monkeypatch):
    z, x, cell = box
    for bad, words in ((dict(cutoff_A=-1.0), "cutoff_A"), (dict(a2=float("nan")), "finite"),
                       (dict(switch_width_A=20.0), "switch_width_A"), (dict(a1=0.0, a2=0.0), "damping radius")):
        with pytest.raises(InputError, match=words):
            D3Dispersion(**bad)
    with pytest.raises(InputError, match="unknown dispersion parameters"):
        D3Dispersion.from_dict({"s8": 1.0, "a3": 2.0})
    assert D3Dispersion.from_dict(disp.to_dict()) == disp
    with pytest.raises(InputError, match="D3 covers"):
        disp.compute(np.array([8, 104]), x[:2])
    with pytest.raises(InputError, match="not finite"):
        disp.compute(z[:3], np.array([[0, 0, 0], [0, 0, np.nan], [1, 0, 0]]))
    with pytest.raises(InputError, match="shape"):
        disp.compute(z[:3], x[:2])
    with pytest.raises(InputError, match="degenerate"):
        disp.compute(z, x, np.diag([8.0, 8.0, 0.0]))
    with pytest.raises(InputError, match="overlapping"):
        disp.compute(z[:2], np.zeros((2, 3)))
    with pytest.raises(InputError, match="elements"):
        disp.compute(np.array([8, 6]), x[:2])  # no coefficients for carbon
    with pytest.raises(InputError, match="fitted"):
        D3Dispersion().compute(z, x, cell)
    monkeypatch.setitem(sys.modules, "dftd3", None)  # as if it were not installed
    with pytest.raises(InputError, match="pip install dftd3"):
        D3Dispersion.fitted([(z, x)])


def test_energy_then_forces_of_one_geometry_evaluate_it_once(box, disp, monkeypatch):
    """A QM/ML step asks the model for the energy, then for the forces: the term is evaluated once."""
    z, x, cell = box
    term = disp.with_parameters()  # a fresh instance, nothing cached
    fresh = disp.with_parameters().compute(z, x, cell)
    calls = []
    evaluate = D3Dispersion._evaluate
    monkeypatch.setattr(D3Dispersion, "_evaluate", lambda self, *a: calls.append(1) or evaluate(self, *a))
    e = term.energy(z, x, cell)
    e2, f, s = term.compute(z, x, cell)
    assert len(calls) == 1 and e2 == e
    assert np.array_equal(f, fresh[1]) and np.array_equal(s, fresh[2])
    term.compute(z, x + 0.01, cell)
    assert len(calls) == 2


def test_dispersion_fit_covers_an_element_pair_that_meets_in_one_frame_only():
    """Rare pairs (here Na+ and Cl- with water and each other, in one frame of twenty) must get coefficients however few frames the
    fit spreads over; the evenly spread frames alone would miss them and the model could not use them."""
    from qmml.ml import Frame
    from qmml.ml.train import fit_dispersion

    water = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])

    def frame(elements, positions):
        n = len(elements)
        return Frame(np.array(elements), np.array(positions), 0.0, np.zeros((n, 3)), np.zeros(n), np.zeros(n, int),
                     np.zeros(1))

    frames = [frame([8, 1, 1, 8, 1, 1], np.vstack([water, water + [3.0, 0.0, 0.0]])) for _ in range(20)]
    frames[7] = frame([8, 1, 1, 11, 17, 11, 17], np.vstack([water, [[2.4, 0, 0], [5.2, 0, 0], [5.2, 2.8, 0],
                                                                  [2.4, 2.8, 0]]]))
    frames[12] = frame([16, 1, 1], [[0.0, 0.0, 0.0], [1.34, 0.0, 0.0], [-0.04, 1.34, 0.0]])  # one S, never with Na
    fitted = fit_dispersion(Dataset(frames), {}, n_frames=3)
    c6 = {(int(a), int(b)): c for a, b, c, _ in fitted.coefficients}
    assert {(11, 17), (8, 11), (1, 17), (11, 11), (8, 8)} <= set(c6)
    # pairs that never meet (S-S, Na-S) are measured with each element in its own environment, side by side:
    # a C6 between those of the pairs that do meet, as for any dispersion coefficient of similar atoms
    assert 0 < c6[(8, 16)] < c6[(16, 16)] and c6[(11, 16)] > 0
    assert np.sqrt(c6[(11, 11)] * c6[(16, 16)]) == pytest.approx(c6[(11, 16)], rel=0.3)
