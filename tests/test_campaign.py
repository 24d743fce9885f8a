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
