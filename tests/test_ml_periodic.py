"""Ewald sums and strain derivatives of the environment model: Madelung constants, independence of the
splitting, exact forces and stress, and the periodic invariances."""

import math

import numpy as np
import pytest
import torch

import qmml
from qmml import units
from qmml.ml import Dataset
from qmml.errors import InputError
from qmml.periodic import cell as cells
from qmml.periodic.ewald import coulomb_open, ewald_coulomb, molecule_exclusions
from conftest import DATA, finite_strain_derivative


def t(a):
    return torch.tensor(a, dtype=torch.float64)


TRICLINIC = np.array([[6.0, 0, 0], [1.2, 5.5, 0], [-0.7, 0.9, 6.3]])


def test_cell_helpers_and_checks():
    h = TRICLINIC
    assert cells.volume(h) == pytest.approx(abs(np.linalg.det(h)))
    assert np.allclose(cells.metric_tensor(h), h @ h.T)
    eps = np.array([[0.01, 0.002, 0], [0.002, -0.01, 0.003], [0, 0.003, 0.02]])
    assert np.allclose(cells.strained(h, eps), h @ (np.eye(3) + eps).T)
    widths = cells.perpendicular_widths(h)
    assert widths[2] == pytest.approx(6.3) and np.all(widths <= np.linalg.norm(h, axis=1) + 1e-12)
    x = np.array([[7.0, -1.0, 3.0], [-20.0, 13.0, 40.0]])
    wrapped = cells.wrap(x, h)
    frac = wrapped @ np.linalg.inv(h)
    assert np.all((frac >= 0) & (frac < 1)) and np.allclose(np.round((wrapped - x) @ np.linalg.inv(h)),
                                                                (wrapped - x) @ np.linalg.inv(h))
    d = cells.minimum_image(x, h)
    assert np.all(np.linalg.norm(d, axis=1) <= np.linalg.norm(x, axis=1))
    # torch in, torch out (differentiable): dV/dH = V H^-T
    ht = torch.tensor(h, requires_grad=True)
    (grad,) = torch.autograd.grad(cells.volume(ht), ht)
    assert np.allclose(grad.numpy(), cells.volume(h) * np.linalg.inv(h).T)
    assert torch.allclose(cells.perpendicular_widths(ht), torch.tensor(widths))
    assert np.allclose(cells.check_cell(h, 2.5), h)
    for bad, words in (([[1, 0, 0], [0, 1, 0], [1, 1, 0]], "degenerate"), (h[[1, 0, 2]], "left-handed"),
                       (h, "thinner than twice"), (np.eye(2), "3x3")):
        with pytest.raises(InputError, match=words):
            cells.check_cell(bad, 3.0)
    cells.check_cell(h[[1, 0, 2]], right_handed=False)


def madelung(charges, positions, cell, nearest, real_cutoff=3.0):
    energy = ewald_coulomb(t(charges), t(positions), cell, real_cutoff=real_cutoff, accuracy=1e-10)
    return -float(energy) / units.COULOMB_EV_A * nearest / (len(charges) / 2)


def test_madelung_constants_in_conventional_and_primitive_cells():
    rock_salt = [[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    signs = [(-1) ** sum(p) for p in rock_salt]
    assert madelung(signs, rock_salt, np.eye(3) * 2.0, 1.0) == pytest.approx(1.747565, abs=1e-6)
    fcc = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)  # the primitive (triclinic) cell, a = 2
    assert madelung([1, -1], [[0, 0, 0], [1, 0, 0]], fcc, 1.0) == pytest.approx(1.747565, abs=1e-6)
    assert madelung([1, -1], [[0, 0, 0], [1, 0, 0]], fcc, 1.0, None) == pytest.approx(1.747565, abs=1e-6)
    cscl = madelung([1, -1], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3), math.sqrt(3) / 2)
    print(f"Madelung: NaCl {madelung(signs, rock_salt, np.eye(3) * 2.0, 1.0):.7f} (conventional), "
          f"{madelung([1, -1], [[0, 0, 0], [1, 0, 0]], fcc, 1.0):.7f} (primitive), CsCl {cscl:.7f}")
    assert cscl == pytest.approx(1.762675, abs=1e-6)


def test_ewald_energy_is_independent_of_the_split_and_periodic():
    rng = np.random.default_rng(1)
    cell = TRICLINIC
    x = rng.uniform(0, 1, (12, 3)) @ cell
    for total in (0.0, 1.3):  # neutral, and charged (the background term)
        q = rng.normal(size=12)
        q += (total - q.sum()) / 12
        energies = [float(ewald_coulomb(t(q), t(x), cell, real_cutoff=rc, accuracy=1e-12)) for rc in (4.0, 7.0, 11.0)]
        energies.append(float(ewald_coulomb(t(q), t(x), cell, accuracy=1e-12)))  # the default split
        print(f"total charge {total}: energy spread over 4 splittings {np.ptp(energies) / abs(energies[0]):.1e} "
              "relative")
        assert np.ptp(energies) < 1e-8 * abs(energies[0])
        moved = x.copy()
        moved[3] += cell[2] - cell[0]
        moved_energy = float(ewald_coulomb(t(q), t(moved), cell, real_cutoff=5.0, accuracy=1e-12))
        assert moved_energy == pytest.approx(energies[0], abs=1e-8)
        skewed = cell.copy()
        skewed[2] += cell[0]  # the same lattice
        skewed_energy = float(ewald_coulomb(t(q), t(x), skewed, real_cutoff=5.0, accuracy=1e-12))
        assert skewed_energy == pytest.approx(energies[0], abs=1e-8)


def test_ewald_forces_potential_strain_and_cell_derivatives_are_exact():
    """One backward pass: forces, dE/dq, dE/d(strain) and dE/dH of a charged box with excluded pairs."""
    rng = np.random.default_rng(4)
    cell = TRICLINIC
    x = np.repeat(rng.uniform(0, 1, (4, 3)) @ cell, 3, 0) + rng.normal(0, 0.6, (12, 3))
    q = rng.normal(size=12) + 0.1
    mol = np.repeat(np.arange(4), 3)

    def energy(xx, qq, hh):
        return float(ewald_coulomb(t(qq), t(xx), hh, exclude=mol, accuracy=1e-12))

    xt, qt, ht = t(x).requires_grad_(), t(q).requires_grad_(), t(cell).requires_grad_()
    strain = torch.zeros((3, 3), dtype=torch.float64, requires_grad=True)
    e = ewald_coulomb(qt, xt, ht, exclude=mol, accuracy=1e-12, strain=strain)
    gx, gq, gs, gh = (g.numpy() for g in torch.autograd.grad(e, (xt, qt, strain, ht)))
    assert float(e.detach()) == pytest.approx(energy(x, q, cell), abs=1e-12)
    d = 1e-5
    fx = np.zeros_like(x)
    for a in (0, 1, 7):
        for k in range(3):
            step = np.zeros_like(x)
            step[a, k] = d
            fx[a, k] = (energy(x + step, q, cell) - energy(x - step, q, cell)) / (2 * d)
    assert np.abs(fx - gx)[[0, 1, 7]].max() < 1e-7
    fq = [(energy(x, q + d * np.eye(12)[a], cell) - energy(x, q - d * np.eye(12)[a], cell)) / (2 * d) for a in (0, 5)]
    assert np.allclose(fq, gq[[0, 5]], atol=1e-7)
    fs, fh = np.zeros((3, 3)), np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = d
            up, down = (np.eye(3) + eps).T, (np.eye(3) - eps).T
            fs[a, b] = (energy(x @ up, q, cell @ up) - energy(x @ down, q, cell @ down)) / (2 * d)
            fh[a, b] = (energy(x, q, cell + eps) - energy(x, q, cell - eps)) / (2 * d)
    assert np.abs(fs - gs).max() / cells.volume(cell) * units.EV_PER_A3_GPA < 1e-6
    assert np.abs(fh - gh).max() < 1e-7
    # the strain derivative of a homogeneous deformation: sum_i R_i (x) dE/dR_i + H^T dE/dH
    assert np.allclose(gs, (gx.T @ x + gh.T @ cell).T, atol=1e-9)


def test_ewald_exclusions_follow_molecules_across_the_box():
    """Same-molecule pairs are removed at their nearest image: wrapping atoms of small molecules changes
    nothing; explicit pairs (nearest image or given shift) do the same as molecule indices."""
    rng = np.random.default_rng(5)
    cell = TRICLINIC
    x = np.repeat(rng.uniform(0, 1, (4, 3)) @ cell, 3, 0) + rng.normal(0, 0.6, (12, 3))
    q = t(rng.normal(size=12))
    mol = np.repeat(np.arange(4), 3)
    reference = float(ewald_coulomb(q, t(x), cell, exclude=mol))
    wrapped = cells.wrap(x, cell)
    assert float(ewald_coulomb(q, t(wrapped), cell, exclude=mol)) == pytest.approx(reference, abs=1e-9)
    i, j, shifts = molecule_exclusions(mol, wrapped, cell)
    assert len(i) == 12 and np.allclose(np.linalg.norm(wrapped[j] + shifts - wrapped[i], axis=1),
                                        np.linalg.norm(x[j] - x[i], axis=1))
    assert float(ewald_coulomb(q, t(wrapped), cell, excluded_pairs=(i, j))) == pytest.approx(reference, abs=1e-9)
    assert float(ewald_coulomb(q, t(wrapped), cell, excluded_pairs=(i, j, shifts))) == \
        pytest.approx(reference, abs=1e-9)
    # an excluded pair loses one image only: a lone molecule of two +1 charges still feels its images
    lone = float(ewald_coulomb(t([1.0, 1.0]), t([[0, 0, 0], [1.0, 0, 0]]), np.eye(3) * 8, exclude=[0, 0]))
    apart = float(ewald_coulomb(t([1.0, 1.0]), t([[0, 0, 0], [1.0, 0, 0]]), np.eye(3) * 8))
    assert apart - lone == pytest.approx(units.COULOMB_EV_A, rel=1e-9)


@pytest.fixture(scope="module")
def cubic_water_box():
    """A GFN2-xTB water box from the shipped test set (16 waters, 7.82 Å cube)."""
    frame = next(f for f in Dataset.load(DATA / "datasets" / "water_test.npz") if f.cell is not None)
    return np.asarray(frame.elements), np.asarray(frame.positions), np.asarray(frame.cell)


@pytest.fixture(scope="module")
def water_box(cubic_water_box):
    """The 16-water box sheared into a triclinic cell."""
    z, x, cell = cubic_water_box
    shear = np.array([[1.0, 0.0, 0.0], [0.1, 1.0, 0.0], [-0.05, 0.08, 1.0]])
    return z, x @ shear.T, cell @ shear.T


def strain_and_forces_check(model, z, x, cell, potential, **kw):
    """Largest errors of the strain derivative (GPa) and of the forces (eV/Å) against central differences
    of energy + potential . charges."""
    p = model.predict(z, x, cell=cell, potential=potential, **kw)

    def objective(xx, cc):
        q = model.predict(z, xx, cell=cc, forces=False, **kw)
        return q.energy + float(potential @ q.charges)

    fd = finite_strain_derivative(lambda d: objective(x @ d, cell @ d))
    stress_error = np.abs(fd - p.strain_derivative).max() / abs(np.linalg.det(cell)) * units.EV_PER_A3_GPA
    force_error = 0.0
    for atom in (0, 4):
        for k in range(3):
            step = np.zeros_like(x)
            step[atom, k] = 1e-5
            f = -(objective(x + step, cell) - objective(x - step, cell)) / 2e-5
            force_error = max(force_error, abs(f - p.forces[atom, k]))
    return stress_error, force_error


@pytest.mark.parametrize("shape", ["triclinic", "orthorhombic"])
def test_water_model_strain_derivative_with_charge_response(water_box, cubic_water_box, shape):
    z, x, cell = water_box if shape == "triclinic" else cubic_water_box
    if shape == "orthorhombic":  # stretched so that the three axes differ
        stretch = np.diag([1.0, 1.05, 0.97])
        x, cell = x @ stretch, cell @ stretch
    n = len(z) // 3
    potential = np.random.default_rng(0).normal(0, 0.5, len(z))  # V: the charge response is part of it
    stress_error, force_error = strain_and_forces_check(
        qmml.load_model("water").double(), z, x, cell, potential, groups=np.repeat(np.arange(n), 3),
        group_charges=np.zeros(n))
    print(f"water ({shape}): strain derivative vs finite strain {stress_error:.1e} GPa, forces {force_error:.1e} eV/Å")
    assert stress_error < 1e-5 and force_error < 1e-6


@pytest.mark.parametrize("form, accuracy", [("dsf", None), ("ewald", 1e-10), ("ewald", None)])
def test_ion_model_strain_derivative_and_forces_for_both_coulomb_forms(water_box, form, accuracy, monkeypatch):
    """Na+ and Cl- replacing two waters of the box, with the organic model's Coulomb term.  The Ewald form
    is exact at a tight accuracy; at the shipped one (1e-6) a finite strain moves reciprocal vectors and
    pairs across the truncation, jumps of that relative size that finite differences see."""
    if accuracy is not None:
        monkeypatch.setattr("qmml.ml.model.EWALD_ACCURACY", accuracy)
    z, x, cell = water_box
    keep = np.arange(6, len(z))
    zz = np.concatenate([[11, 17], z[keep]])
    xx = np.concatenate([x[[0, 3]], x[keep]])
    molecules = np.concatenate([[0, 1], 2 + np.repeat(np.arange(len(keep) // 3), 3)])
    model = qmml.load_model("organic").double().with_coulomb(form)
    potential = np.random.default_rng(1).normal(0, 0.5, len(zz))
    stress_error, force_error = strain_and_forces_check(model, zz, xx, cell, potential, groups=np.zeros(len(zz), int),
                                                        group_charges=[0.0], molecules=molecules)
    from qmml.ml.model import EWALD_ACCURACY

    label = form if form == "dsf" else f"ewald, accuracy {EWALD_ACCURACY:g}"
    print(f"Na+/Cl- in water ({label}): strain derivative vs finite strain {stress_error:.1e} GPa, "
          f"forces {force_error:.1e} eV/Å")
    assert stress_error < (1e-5 if form == "dsf" or accuracy else 2e-4) and force_error < 1e-6
    moved = xx.copy()
    moved[1] += cell[1]  # the chloride by a lattice vector
    kw = dict(cell=cell, groups=np.zeros(len(zz), int), group_charges=[0.0], molecules=molecules, forces=False)
    assert model.predict(zz, moved, **kw).energy == pytest.approx(model.predict(zz, xx, **kw).energy, abs=1e-8)


def test_ewald_form_without_a_box_is_the_bare_coulomb_sum_between_molecules():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 8, (9, 3))
    q = rng.normal(size=9)
    molecules = np.repeat(np.arange(3), 3)
    expected = sum(q[a] * q[b] / np.linalg.norm(x[a] - x[b]) for a in range(9) for b in range(a + 1, 9)
                   if molecules[a] != molecules[b]) * units.COULOMB_EV_A
    assert float(coulomb_open(t(q), t(x), exclude=torch.tensor(molecules))) == pytest.approx(expected, rel=1e-12)
    i, j, _ = molecule_exclusions(molecules, x)
    assert float(coulomb_open(t(q), t(x), excluded_pairs=(j, i))) == pytest.approx(expected, rel=1e-12)
    # and a large box approaches it (the periodic images and the background fade as 1/L)
    big = float(ewald_coulomb(t(q - q.mean()), t(x), np.eye(3) * 400.0, exclude=torch.tensor(molecules)))
    bare = float(coulomb_open(t(q - q.mean()), t(x), exclude=torch.tensor(molecules)))
    assert big == pytest.approx(bare, abs=2e-3)


def test_subtractive_environment_strain_derivative(water_box):
    """MLEnvironment in the subtractive scheme: E_ML(all) - E_ML(QM region, open boundaries) plus the charge
    response, differentiated with respect to strain."""
    from MDAnalysis.lib.mdamath import triclinic_box

    z, x, sheared = water_box
    symbols = np.where(z == 8, "O", "H")
    n = len(z) // 3
    box = triclinic_box(*sheared)
    cell = qmml.System.from_arrays(symbols, x, box=box).cell  # MDAnalysis's orientation of the same cell
    x = x @ np.linalg.inv(sheared) @ cell
    system = qmml.System.from_arrays(symbols, x, box=box, residues=np.repeat(np.arange(n), 3) + 1,
                                     bonds=[(3 * i, 3 * i + b) for i in range(n) for b in (1, 2)])
    part = qmml.partition(system, [0, 1, 2], charge=0)
    from qmml.environments.ml import MLEnvironment

    env = MLEnvironment(qmml.load_model("water").double())
    gradient = np.random.default_rng(3).normal(0, 0.5, len(part.env_atoms))
    evaluation = env.evaluate(x, part, "subtractive", cell=cell)
    analytic = evaluation.strain_derivative(gradient)

    def objective(xx, cc):
        e = env.evaluate(xx, part, "subtractive", cell=cc)
        return e.energy + float(gradient @ e.charges)

    fd = finite_strain_derivative(lambda d: objective(x @ d, cell @ d))
    error = np.abs(fd - analytic).max() / abs(np.linalg.det(cell)) * units.EV_PER_A3_GPA
    print(f"subtractive MLEnvironment: strain derivative vs finite strain {error:.1e} GPa")
    assert error < 1e-5


def test_ml_potential_stress_follows_the_cell_argument(water_box):
    """MLPotential.compute(cell=) replaces the system's box for the call (NPT) and returns the stress of that
    box; no stress without a box; the additive MLEnvironment gives the same strain derivative; fixed charges
    give zero."""
    from MDAnalysis.lib.mdamath import triclinic_box

    from qmml.environments.ml import MLEnvironment
    from qmml.ml.potential import MLPotential

    z, x, sheared = water_box
    n = len(z) // 3
    symbols = np.where(z == 8, "O", "H")
    topology = dict(residues=np.repeat(np.arange(n), 3) + 1,
                    bonds=[(3 * i, 3 * i + b) for i in range(n) for b in (1, 2)])
    system = qmml.System.from_arrays(symbols, x, box=triclinic_box(*sheared), **topology)
    cell = system.cell
    x = x @ np.linalg.inv(sheared) @ cell  # the same structure in MDAnalysis's orientation of the cell
    model = qmml.load_model("water").double()
    potential = MLPotential(model, system)
    bigger = cell @ np.diag([1.02, 1.0, 0.99])  # another box for this call only
    xb = x @ np.linalg.inv(cell) @ bigger
    result = potential.compute(xb, cell=bigger)
    energy = lambda xx, cc: potential.compute(xx, forces=False, cell=cc).energy  # noqa: E731
    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(a, 3):
            eps = np.zeros((3, 3))
            eps[a, b] = eps[b, a] = 0.5e-5  # symmetric strain: the stress is symmetric
            up, down = (np.eye(3) + eps).T, (np.eye(3) - eps).T
            fd[a, b] = fd[b, a] = (energy(xb @ up, bigger @ up) - energy(xb @ down, bigger @ down)) / 1e-5 / (
                1.0 if a == b else 2.0)
    stress_fd = fd / cells.volume(bigger)
    error_gpa = np.abs(stress_fd - result.stress).max() * units.EV_PER_A3_GPA
    pressure = -np.trace(result.stress) / 3 * units.EV_PER_A3_GPA
    print(f"MLPotential stress vs finite strain: {error_gpa:.1e} GPa (virial pressure {pressure:.3f} GPa)")
    assert error_gpa < 1e-3 and np.allclose(result.stress, result.stress.T)
    assert result.energy == pytest.approx(energy(xb, bigger), abs=1e-10)
    assert potential.compute(x).stress is not None  # the system's own box by default
    assert potential.compute(x, forces=False).stress is None
    open_system = qmml.System.from_arrays(symbols, x, **topology)
    assert MLPotential(model, open_system).compute(x).stress is None
    with pytest.raises(InputError, match="without a box"):
        MLPotential(model, open_system).compute(x, cell=cell)

    part = qmml.partition(system, [0, 1, 2], charge=0)
    env = MLEnvironment(model).evaluate(x, part, "additive", cell=cell)
    gradient = np.zeros(len(part.env_atoms))
    env_only = model.predict(z[3:], x[3:], cell=cell, groups=np.repeat(np.arange(n - 1), 3),
                             group_charges=np.zeros(n - 1))
    assert np.allclose(env.strain_derivative(gradient), env_only.strain_derivative, atol=1e-10)
    assert np.allclose(env.forces(gradient)[3:], env_only.forces, atol=1e-10)
    assert MLEnvironment(model).evaluate(x, qmml.partition(open_system, [0, 1, 2], charge=0)).strain_derivative is None
    fixed = qmml.FixedCharges(np.zeros(len(z))).evaluate(x, part, cell=cell)
    assert np.array_equal(fixed.strain_derivative(gradient), np.zeros((3, 3)))


def test_coulomb_forms_of_the_model():
    """'ewald' without a box is the bare Coulomb sum between molecules of the predicted charges; models
    saved before the option existed load as 'dsf'; a model without a Coulomb term cannot switch."""
    from qmml.ml.model import EnvironmentModel, dsf_coulomb_pairs

    rng = np.random.default_rng(6)
    # a model whose predicted charges are those of its Coulomb term (no separate embedding-charge head)
    dsf = qmml.load_model("organic_clusters").double()
    ewald = dsf.with_coulomb("ewald")
    assert dsf.coulomb_form == "dsf" and ewald.coulomb_form == "ewald" and ewald.config()["coulomb"] == "ewald"
    z = np.array([11, 17, 8, 1, 1, 8, 1, 1])
    x = np.array([[0, 0, 0], [3.0, 0, 0], [0, 2.4, 0], [0.5, 3.1, 0], [-0.8, 2.9, 0.3],
                  [3.2, 3.0, 0.4], [2.6, 3.7, 0.7], [3.9, 3.2, 1.0]]) + rng.normal(0, 0.05, (8, 3))
    molecules = np.array([0, 1, 2, 2, 2, 3, 3, 3])
    kw = dict(groups=np.zeros(8, int), group_charges=[0.0], molecules=molecules)
    a, b = dsf.predict(z, x, **kw), ewald.predict(z, x, **kw)
    assert np.allclose(a.member_charges, b.member_charges, atol=1e-12)  # the Coulomb form changes no charge
    i, j = np.triu_indices(8, 1)
    other = molecules[i] != molecules[j]
    i, j = i[other], j[other]
    r = np.linalg.norm(x[j] - x[i], axis=1)
    q = b.member_charges
    bare = units.COULOMB_EV_A * (q[:, i] * q[:, j] / r).sum(1)
    damped = dsf_coulomb_pairs(t(q[:, i]), t(q[:, j]), t(r), dsf.coulomb_cutoff).sum(1).numpy()
    assert np.allclose(b.member_energies - a.member_energies, bare - damped, atol=1e-10)
    # the bare form's forces, including the charge response, are exact as well
    potential = rng.normal(0, 0.5, 8)
    p = ewald.predict(z, x, potential=potential, **kw)
    for atom, k in ((0, 0), (4, 2)):
        step = np.zeros_like(x)
        step[atom, k] = 1e-5
        e = [(lambda s: s.energy + potential @ s.charges)(ewald.predict(z, x + sign * step, forces=False, **kw))
             for sign in (1, -1)]
        assert -(e[0] - e[1]) / 2e-5 == pytest.approx(p.forces[atom, k], abs=1e-6)
    arch = dsf.config()
    del arch["coulomb"]  # a header written before the option
    assert EnvironmentModel(**arch).coulomb_form == "dsf"
    with pytest.raises(InputError, match="no Coulomb term"):
        qmml.load_model("water").with_coulomb("ewald")
    with pytest.raises(InputError, match="not one of"):
        dsf.with_coulomb("pme")
