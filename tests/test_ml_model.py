"""Environment model physics: forces = -dE/dR, exact charge conservation, charge response,
invariances, chunked = whole evaluation, float32/float64, committees."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from qmml.ml import EnvironmentModel, neighbour_list
from qmml.periodic.neighbours import brute_force_pairs


def waters(n, seed=0, spacing=3.1, box=None):
    """n water molecules on a jittered grid with random orientations (Å)."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(n ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n] * spacing
    local = np.array([[0, 0, 0], [0.957, 0, 0], [-0.240, 0.927, 0]])
    x = np.concatenate([c + rng.normal(0, 0.1, 3) + local @ Rotation.random(random_state=rng.integers(1e9)).as_matrix().T
                        for c in grid])
    return np.tile([8, 1, 1], n), x, np.repeat(np.arange(n), 3)


def model(n_members=1, coulomb=None, seed=0, elements=(1, 8), embedding=False):
    torch.manual_seed(seed)
    m = EnvironmentModel(list(elements), cutoff=4.0, n_radial=8, n_channels=6, hidden=(16,), n_members=n_members,
                         coulomb_cutoff=coulomb, embedding_charges=embedding).double()
    with torch.no_grad():  # a non-trivial untrained model: charges and energies vary with geometry
        for member in m.members:
            member.atomic_charge.copy_(torch.tensor([0.4, -0.8][:len(elements)]))
            member.charge_scale.fill_(0.3)
            member.charge_weight_logit.normal_()
            if embedding:  # a second head unlike the first
                member.embedding_charge.copy_(torch.tensor([0.6, -1.2][:len(elements)]))
                member.embedding_weight_logit.normal_()
    return m


def finite_difference_forces(m, z, x, atoms, h=1e-4, **kw):
    phi = kw.pop("potential", None)

    def objective(xx):
        p = m.predict(z, xx, forces=False, **kw)
        return p.energy + (0.0 if phi is None else float(phi @ p.charges))

    out = np.zeros((len(atoms), 3))
    for a, k in enumerate(atoms):
        for d in range(3):
            xp, xm = x.copy(), x.copy()
            xp[k, d] += h
            xm[k, d] -= h
            out[a, d] = -(objective(xp) - objective(xm)) / (2 * h)
    return out


@pytest.mark.parametrize("embedding", [False, True], ids=["one_head", "embedding_head"])
@pytest.mark.parametrize("coulomb", [None, 6.0])
@pytest.mark.parametrize("periodic", [False, True])
def test_forces_with_charge_response_match_finite_differences(coulomb, periodic, embedding):
    z, x, groups = waters(8, seed=1)
    cell = np.array([[6.5, 0, 0], [0.8, 6.3, 0], [0.3, -0.5, 6.6]]) if periodic else None
    rng = np.random.default_rng(2)
    phi = rng.normal(0, 2.0, len(z))  # V
    groups = groups.copy()
    groups[:3] = -1  # a "QM" molecule: a neighbour without charge
    qg = np.array([0, 0, 1, 0, -1, 0, 0, 0], float)
    m = model(coulomb=coulomb, embedding=embedding)
    pred = m.predict(z, x, cell=cell, groups=groups, group_charges=qg, potential=phi)
    if embedding:  # the returned (embedding) charges are conserved per group and are not the latent ones
        assert np.abs(np.bincount(groups[3:], pred.charges[3:])[1:] - qg[1:]).max() < 1e-10
        assert np.all(pred.charges[:3] == 0.0)
        assert np.abs(pred.charges - model(coulomb=coulomb).predict(z, x, cell=cell, groups=groups,
                                                                    group_charges=qg).charges).max() > 0.05
    atoms = [0, 4, 11, 23]
    fd = finite_difference_forces(m, z, x, atoms, cell=cell, groups=groups, group_charges=qg, potential=phi)
    assert np.abs(pred.forces[atoms] - fd).max() < 1e-4
    assert np.abs(pred.forces).max() > 1e-2  # the check is not vacuous


@pytest.mark.parametrize("coulomb", [None, 6.0])
def test_a_new_embedding_head_starts_as_a_copy_of_the_charge_head(coulomb):
    """`with_embedding_head` adds the head without changing any prediction, so a trained model can be
    refined on ESP charges from where it stands."""
    z, x, groups = waters(6, seed=4)
    phi = np.random.default_rng(5).normal(0, 1.0, len(z))
    m = model(n_members=2, coulomb=coulomb)
    e = m.with_embedding_head()
    assert e.embedding_charges and not m.embedding_charges and e.config()["embedding_charges"]
    p, q = (k.predict(z, x, groups=groups, potential=phi, molecules=groups, uncertainty=True) for k in (m, e))
    assert q.energy == pytest.approx(p.energy, abs=1e-12)
    for name in ("charges", "forces", "member_charges", "forces_std"):
        assert np.abs(getattr(q, name) - getattr(p, name)).max() < 1e-12


def test_charges_conserved_per_group_to_1e10():
    z, x, groups = waters(12, seed=3)
    qg = np.array([0, 1, -1, 0, 0, 2, 0, 0, 0, 0, -1, 0], float)
    groups = groups.copy()
    groups[-3:] = -1
    p = model(n_members=3).predict(z, x, groups=groups, group_charges=qg, forces=False)
    sums = np.bincount(groups[groups >= 0], weights=p.charges[groups >= 0], minlength=len(qg))
    assert np.abs(sums[:11] - qg[:11]).max() < 1e-10
    assert np.all(p.charges[-3:] == 0.0)
    assert np.ptp(p.charges[z == 8]) > 1e-3  # charges depend on the environment


def test_constant_potential_changes_no_force():
    z, x, groups = waters(6, seed=4)
    m = model(coulomb=5.0)
    phi = np.random.default_rng(0).normal(size=len(z))
    f1 = m.predict(z, x, groups=groups, potential=phi).forces
    f2 = m.predict(z, x, groups=groups, potential=phi + 7.3).forces
    assert np.abs(f1 - f2).max() < 1e-10


def test_chunked_evaluation_equals_whole():
    z, x, groups = waters(27, seed=5)
    m = model(n_members=2)
    phi = np.random.default_rng(1).normal(size=len(z))
    whole = m.predict(z, x, groups=groups, potential=phi, uncertainty=True)
    chunked = m.predict(z, x, groups=groups, potential=phi, uncertainty=True, chunk_size=10)
    assert abs(whole.energy - chunked.energy) < 1e-10
    assert np.abs(whole.forces - chunked.forces).max() < 1e-10
    assert np.abs(whole.forces_std - chunked.forces_std).max() < 1e-10
    assert np.abs(whole.charges - chunked.charges).max() < 1e-12


def test_translation_rotation_invariance_and_force_covariance():
    z, x, groups = waters(10, seed=6)
    m = model(coulomb=6.0)
    p = m.predict(z, x, groups=groups)
    rot = Rotation.random(random_state=7).as_matrix()
    moved = x @ rot.T + np.array([3.0, -11.0, 0.5])
    q = m.predict(z, moved, groups=groups)
    assert abs(p.energy - q.energy) < 1e-9
    assert np.abs(p.charges - q.charges).max() < 1e-10
    assert np.abs(p.forces @ rot.T - q.forces).max() < 1e-9
    assert np.abs(p.forces.sum(0)).max() < 1e-9  # no net force on an isolated system


def test_permutation_of_identical_molecules():
    z, x, groups = waters(9, seed=8)
    m = model()
    p = m.predict(z, x, groups=groups)
    order = np.random.default_rng(2).permutation(9)
    atoms = (3 * order[:, None] + np.arange(3)).ravel()
    q = m.predict(z, x[atoms], groups=groups)
    assert abs(p.energy - q.energy) < 1e-10
    assert np.abs(p.forces[atoms] - q.forces).max() < 1e-10
    assert np.abs(p.charges[atoms] - q.charges).max() < 1e-12


def test_periodic_image_shift_and_wrapping():
    z, x, groups = waters(8, seed=9)
    cell = np.array([[6.4, 0, 0], [1.2, 6.1, 0], [-0.7, 0.9, 6.3]])
    m = model(coulomb=7.0)
    p = m.predict(z, x, cell=cell, groups=groups)
    shifted = x.copy()
    shifted[6:9] += cell[0] - 2 * cell[2]  # move one molecule to another image
    q = m.predict(z, shifted, cell=cell, groups=groups)
    assert abs(p.energy - q.energy) < 1e-9
    assert np.abs(p.forces - q.forces).max() < 1e-9
    open_box = m.predict(z, x, groups=groups)
    assert abs(open_box.energy - p.energy) > 1e-4  # the images do interact


def test_float32_agrees_with_float64():
    z, x, groups = waters(8, seed=10)
    m64 = model()
    m32 = model().float()
    p64, p32 = m64.predict(z, x, groups=groups), m32.predict(z, x, groups=groups)
    assert abs(p64.energy - p32.energy) < 1e-4 * max(1.0, abs(p64.energy))
    assert np.abs(p64.forces - p32.forces).max() < 1e-3
    assert abs(p32.charges.sum()) < 1e-5


def test_committee_mean_and_spread():
    z, x, groups = waters(6, seed=11)
    m = model(n_members=3)
    p = m.predict(z, x, groups=groups, uncertainty=True)
    singles = []
    for member in m.members:
        one = model(n_members=1)
        one.members[0].load_state_dict(member.state_dict())
        singles.append(one.predict(z, x, groups=groups))
    assert abs(p.energy - np.mean([s.energy for s in singles])) < 1e-10
    assert abs(p.energy_std - np.std([s.energy for s in singles])) < 1e-10
    assert np.abs(p.forces - np.mean([s.forces for s in singles], 0)).max() < 1e-10
    assert np.abs(p.forces_std - np.std([s.forces for s in singles], 0)).max() < 1e-10
    assert np.abs(p.charges_std - np.std([s.charges for s in singles], 0)).max() < 1e-12
    assert p.energy_std > 0


@pytest.mark.parametrize("cell", [None, "cubic", "thin-triclinic"])
def test_neighbour_list_matches_brute_force(cell):
    rng = np.random.default_rng(3)
    cells = {"cubic": np.eye(3) * 9.0, "thin-triclinic": np.array([[3.0, 0, 0], [1.0, 3.2, 0], [0.5, 0.4, 2.9]])}
    c = None if cell is None else cells[cell]
    x = rng.uniform(-2, 11, (50 if cell != "thin-triclinic" else 6, 3))
    i, j, s = neighbour_list(torch.tensor(x), 4.0, c)
    got = set()
    for a, b, sh in zip(i.tolist(), j.tolist(), s.numpy()):
        img = (0, 0, 0) if c is None else tuple(int(v) for v in np.round(np.linalg.solve(c.T, sh)))
        got.add((a, b, img))
    assert len(got) == len(i)
    assert got == brute_force_pairs(x, 4.0, c, max_image=7 if cell == "thin-triclinic" else 3)


def test_unknown_element_is_named():
    z, x, _ = waters(2)
    z = z.copy()
    z[0] = 17
    with pytest.raises(ValueError, match="not \\['Cl'\\]"):
        model().predict(z, x)


@pytest.mark.parametrize("coulomb,charge_groups", [(None, "molecule"), (6.0, "molecule"), (6.0, "structure")])
def test_training_path_equals_prediction_path(coulomb, charge_groups):
    """Training batches (precomputed pairs, several frames at once) give what `predict` gives."""
    from qmml.ml import Frame
    from qmml.ml.train import _Batch, _member_forward

    m = model(coulomb=coulomb)
    m.charge_groups = charge_groups
    frames = []
    for seed, cell in ((12, None), (13, np.eye(3) * 7.0)):
        z, x, groups = waters(6, seed=seed)
        qg = np.zeros(6)
        qg[1], qg[4] = 1.0, -1.0
        frames.append(Frame(z, x, 0.0, np.zeros_like(x), np.zeros(len(z)), groups, qg, cell))
    energy, forces, charges = _member_forward(m, 0, _Batch(m, frames, torch.float64), create_graph=False)
    for k, f in enumerate(frames):
        if charge_groups == "molecule":
            p = m.predict(f.elements, f.positions, cell=f.cell, groups=f.molecule, group_charges=f.molecule_charges)
        else:
            p = m.predict(f.elements, f.positions, cell=f.cell, group_charges=[f.molecule_charges.sum()],
                          molecules=f.molecule)
        assert abs(energy[k].item() - p.energy) < 1e-10
        assert np.abs(forces[18 * k:18 * (k + 1)].detach().numpy() - p.forces).max() < 1e-10
        assert np.abs(charges[18 * k:18 * (k + 1)].detach().numpy() - p.charges).max() < 1e-12


def test_bad_inputs_are_named():
    from qmml.errors import InputError

    z, x, groups = waters(2)
    m = model()
    with pytest.raises(InputError, match="groups needs one entry per atom"):
        m.predict(z, x, groups=groups[:-1])
    with pytest.raises(InputError, match="potential needs one entry per atom"):
        m.predict(z, x, potential=np.zeros(2))
    bad = x.copy()
    bad[4, 1] = np.nan
    with pytest.raises(InputError, match="atom 4 is not finite"):
        m.predict(z, bad)
