"""The condensed-phase labelling campaign (data/scripts/condensed_phase.py): chunks are written whole, a run
continues where the last one stopped, seed boxes have the planned density and no contacts, and the stress
labels are periodic GFN2-xTB's."""

import sys

import numpy as np
import pytest

from qmml.ml import Dataset
from conftest import DATA

sys.path.insert(0, str(DATA / "scripts"))
campaign = pytest.importorskip("condensed_phase")


def tiny_plan():
    T = campaign.Trajectory
    return [T(0, 8, 0.95, 300.0, 11, frames=2, every=5, burn_in=5),
            T(1, 8, 1.05, 330.0, 12, frames=2, every=5, burn_in=5)]


def test_seed_boxes_have_the_planned_density_and_no_contacts():
    from qmml import units
    from qmml.elements import MASSES_AMU
    from qmml.periodic.cell import minimum_image

    for t in campaign.water_plan()[::12]:
        z, x, cell, molecule, charges = campaign.solvated_box(t)
        mass = (MASSES_AMU["O"] + 2 * MASSES_AMU["H"]) * t.n_waters
        density = mass / abs(np.linalg.det(cell)) * units.AMU_PER_A3_G_PER_CM3
        assert density == pytest.approx(t.density_g_cm3, rel=1e-6) and charges.sum() == 0
        d = minimum_image((x[:, None] - x[None]).reshape(-1, 3), cell).reshape(len(x), len(x), 3)
        r = np.linalg.norm(d, axis=-1)
        other = molecule[:, None] != molecule[None, :]
        assert r[other].min() >= 1.7 and campaign.whole(z, x, cell, molecule)


def test_campaign_writes_whole_chunks_and_continues_where_it_stopped(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tblite")
    monkeypatch.setattr(campaign, "CAMPAIGNS", tmp_path)
    monkeypatch.setitem(campaign.PLANS, "tiny", tiny_plan)
    monkeypatch.setitem(campaign.SEED_MODELS, "tiny", "water")
    campaign.main(["tiny", "--max-minutes", "0"])  # stops after the first chunk, as a killed run would
    labels = tmp_path / "tiny" / "labels"
    assert [p.name for p in sorted(labels.iterdir())] == ["chunk_000.npz"]
    first = (labels / "chunk_000.npz").read_bytes()
    campaign.main(["tiny"])
    assert sorted(p.name for p in labels.iterdir()) == ["chunk_000.npz", "chunk_001.npz"]
    assert (labels / "chunk_000.npz").read_bytes() == first  # done chunks are never redone
    out = capsys.readouterr().out
    assert "2/2 chunks labelled" in out
    chunk = Dataset.load(labels / "chunk_001.npz")
    assert len(chunk) == 2 and chunk.metadata["reference"] == campaign.REFERENCE
    assert all(f.stress is not None and f.cell is not None for f in chunk.frames)
    # a changed plan is refused rather than mixed into the same folder
    monkeypatch.setitem(campaign.PLANS, "tiny", lambda: tiny_plan()[:1])
    with pytest.raises(SystemExit, match="differs"):
        campaign.main(["tiny"])


def test_compressed_ion_contacts_put_one_ion_at_its_pair_distance_and_nothing_else_moves():
    from qmml.elements import covalent_radius_A
    from qmml.periodic.cell import minimum_image

    plan = campaign.ion_contacts_plan()
    assert all((campaign.CAMPAIGNS / t.source).exists() for t in plan)  # the plan regenerates from committed seeds
    source = Dataset.load(campaign.CAMPAIGNS / "solutions/seeds/traj_009.npz")  # 2 NaCl in 60 waters
    rng = np.random.default_rng(0)
    pairs = set()
    for f in source.frames[:6] * 4:
        g = campaign.compressed(f, rng)
        moved = np.flatnonzero(np.any(g.positions != f.positions, axis=1))
        assert len(moved) == 1 and g.elements[moved[0]] in campaign.ION_CHARGES and np.isnan(g.energy)
        i = moved[0]
        r = np.linalg.norm(minimum_image(g.positions - g.positions[i], g.cell), axis=1)
        other = np.flatnonzero(g.molecule != g.molecule[i])
        in_range = [k for k in other if (key := tuple(sorted((int(g.elements[i]), int(g.elements[k])))))
                    in campaign.CONTACT_RANGES_A and
                    campaign.CONTACT_RANGES_A[key][0] - 1e-9 <= r[k] <= campaign.CONTACT_RANGES_A[key][1] + 1e-9]
        assert in_range
        pairs |= {tuple(sorted((int(g.elements[i]), int(g.elements[k])))) for k in in_range}
        limit = 0.6 * (covalent_radius_A(g.elements)[i] + covalent_radius_A(g.elements)[other])
        assert np.sum(r[other] < limit) <= 1  # only the chosen partner may come that close
    assert {(11, 17), (8, 11), (1, 17)} <= pairs


def test_classical_seed_forces_are_exact_and_keep_a_solution_whole():
    """The classical seed force field of the solutions plan: forces are its energy's gradient (Coulomb, LJ and
    shape springs across the periodic boundary), charges are the model's formal ones, and 300 fs of 350 K
    Langevin dynamics of a capped dipeptide with a counter-ion in 32 waters leaves every molecule whole."""
    pytest.importorskip("rdkit")
    sys.path.insert(0, str(DATA / "scripts"))
    from make_datasets import langevin_frames

    t = next(t for t in campaign.solutions_plan() if t.solute and t.ions and t.temperature_K == 350.0)
    z, x, cell, molecule, charges = campaign.solvated_box(t)
    forces = campaign.ClassicalForces(z, x, cell, molecule, charges, t.solute)
    assert np.bincount(molecule, weights=forces.q) == pytest.approx(charges, abs=1e-6)
    label = forces(x)
    step = 1e-5
    for a in (0, int(np.argmax(np.abs(label.forces).sum(1))), len(z) - 1):
        for k in range(3):
            d = np.zeros_like(x)
            d[a, k] = step
            fd = -(forces(x + d).energy - forces(x - d).energy) / (2 * step)
            assert fd == pytest.approx(label.forces[a, k], abs=1e-6)
    rng = np.random.default_rng(0)
    frames = list(langevin_frames(forces, z, x, temperature_K=350.0, steps=300, every=100, burn_in=0, rng=rng))
    assert len(frames) == 3 and all(campaign.whole(z, p, cell, molecule) for p, _ in frames)


def test_dft_cutout_campaign_labels_whole_clusters_and_continues(tmp_path, monkeypatch, capsys):
    """The DFT route's campaign (data/scripts/dft_cutouts.py) on a tiny plan: clusters of whole waters around
    a random water of a periodic frame, labelled at the plan's level with D3, written as one chunk that a second
    run leaves alone."""
    cutouts = pytest.importorskip("dft_cutouts")
    plan = cutouts.Plan(("data/campaigns/water/labels/chunk_000.npz",), 2, 2.4, "revpbe", "sto-3g", "d3bj", 3)
    monkeypatch.setitem(cutouts.PLANS, "tiny", plan)
    assert cutouts.main(["tiny", "--campaigns-dir", str(tmp_path)]) == 0
    data = Dataset.load(tmp_path / "tiny" / "labels" / "chunk_000.npz")
    assert len(data) == 2 and "revpbe-D3(BJ)/sto-3g" in data.metadata["reference"]
    for frame in data:
        assert frame.cell is None and len(frame.elements) % 3 == 0 and len(frame.elements) >= 6
        assert np.array_equal(np.bincount(frame.molecule), np.full(len(frame.elements) // 3, 3))
        assert campaign.whole(frame.elements, frame.positions, None, frame.molecule)
        assert np.isfinite(frame.energy) and np.abs(frame.forces).max() < 20
        assert frame.esp_charges is not None and abs(frame.esp_charges.sum()) < 1e-6  # stored in float32
    capsys.readouterr()
    assert cutouts.main(["tiny", "--campaigns-dir", str(tmp_path)]) == 0
    assert "1/1 chunks labelled" in capsys.readouterr().out.splitlines()[-1]


def test_dft_cutout_active_learning_round_centres_the_closest_foreign_contact(tmp_path, monkeypatch, capsys):
    """An active-learning plan takes a run's frames (.extxyz, molecules from the run's PSF) and cuts out around the
    hydrogen nearest an oxygen of another molecule: where a proton sliding to a neighbour shows first.  Here one
    hydrogen of the 128-water box is pushed to 1.2 Å of a neighbouring oxygen; that hydrogen is the centre, and
    the cluster keeps both waters whole."""
    import ase.io
    from ase import Atoms

    import qmml
    from qmml.periodic.cell import minimum_image

    cutouts = pytest.importorskip("dft_cutouts")
    box = qmml.load_system(str(DATA / "structures/water_box.psf"), str(DATA / "structures/water_box.pdb"))
    x = box.positions.copy()
    h, z = 1 + 3 * 40, box.atomic_numbers
    others = np.nonzero((z == 8) & (box.molecule_index != box.molecule_index[h]))[0]
    d = minimum_image(x[others] - x[h], box.cell)
    o = others[np.argmin(np.linalg.norm(d, axis=1))]
    v = minimum_image(x[o] - x[h], box.cell)
    x[h] = x[o] - 1.2 * v / np.linalg.norm(v)
    ase.io.write(tmp_path / "run.extxyz", Atoms(list(box.elements), x, cell=box.cell, pbc=True))
    plan = cutouts.Plan((str(tmp_path / "run.extxyz"),), 1, 2.0, "revpbe", "sto-3g", "d3bj", 3, centres="contact",
                        topology="data/structures/water_box.psf")
    (frame_index, centre, cluster), = cutouts.clusters(plan)
    assert centre == h
    both = np.nonzero(np.isin(box.molecule_index, box.molecule_index[[o, h]]))[0]
    assert set(both) <= set(cluster.source)
    at = {int(a): k for k, a in enumerate(cluster.source)}
    assert np.linalg.norm(cluster.positions[at[h]] - cluster.positions[at[int(o)]]) == pytest.approx(1.2, abs=1e-6)
    assert len(cluster.elements) % 3 == 0 and np.array_equal(np.bincount(cluster.molecule),
                                                            np.full(len(cluster.elements) // 3, 3))
    monkeypatch.setitem(cutouts.PLANS, "tiny_al", plan)
    assert cutouts.main(["tiny_al", "--campaigns-dir", str(tmp_path)]) == 0
    data = Dataset.load(tmp_path / "tiny_al" / "labels" / "chunk_000.npz")
    assert len(data) == 1 and np.isfinite(data.frames[0].energy)
    assert data.metadata["centres"] == [h]


def test_ion_pair_scan_moves_one_atom_to_each_distance_across_the_boundary(capsys, tmp_path):
    scan = pytest.importorskip("ion_pair_scan")
    from qmml.periodic.cell import minimum_image

    cell = np.diag([10.0, 11.0, 12.0])
    x = np.array([[0.3, 5.0, 6.0], [9.6, 5.5, 6.2], [5.0, 5.0, 5.0]])  # atoms 0 and 1 are 0.77 Å apart through x = 0
    for r, y in zip([1.5, 2.5, 3.5], scan.scan_positions(x, cell, 0, 1, [1.5, 2.5, 3.5])):
        assert np.linalg.norm(minimum_image(y[0] - y[1], cell)) == pytest.approx(r)
        assert np.array_equal(y[1:], x[1:])
        assert np.dot(minimum_image(y[0] - y[1], cell), minimum_image(x[0] - x[1], cell)) > 0  # same side
    assert scan.main(["--atoms", "3", "3", "--no-teacher", "--models"]) == 2
    assert "two different atoms" in capsys.readouterr().err
    assert scan.main(["--frame", str(tmp_path / "none.npz"), "--no-teacher", "--models"]) == 2
    assert "--frame" in capsys.readouterr().err
