"""benchmarks/embedding_fidelity.py on a water dimer at HF/STO-3G (a few seconds)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import qmml

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "embedding_fidelity.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("embedding_fidelity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def water_dimer(r_oo=2.91):
    """Linear hydrogen bond along x, the donor (the 'solute') in the xy plane at the origin; the
    acceptor's bisector in the same plane, 57 deg from the O-O axis, its hydrogens at +-z (C_s)."""
    r, half = 0.9572, np.deg2rad(104.52 / 2)
    donor = [[0, 0, 0], [r, 0, 0], [r * np.cos(2 * half), r * np.sin(2 * half), 0]]
    tilt = np.deg2rad(57.0)
    bisector = np.array([np.cos(tilt), -np.sin(tilt), 0.0])
    o2 = np.array([r_oo, 0.0, 0.0])
    acceptor = [o2] + [o2 + r * (np.cos(half) * bisector + s * np.sin(half) * np.array([0, 0, 1.0])) for s in (1, -1)]
    return np.array(donor + [list(a) for a in acceptor], float)


def test_water_dimer_interaction_energies(bench):
    cluster = bench.Cluster("dimer", ("O", "H", "H") * 2, water_dimer(), n_solute=3, charge=0)
    assert cluster.bonds() == [(0, 1), (0, 2), (3, 4), (3, 5)]
    e = bench.cluster_interaction_energies(cluster, qmml.PySCFEngine("hf", "sto-3g", density_fit=True),
                                           embeddings=("tip3p", "water_model"))
    # HF water dimer binding is about -5 kcal/mol near the minimum (STO-3G, no counterpoise: -5 to -6)
    assert -8.0 < e["full_qm"] < -3.0
    # a hydrogen bond with TIP3P or ML charges: attractive, and the LJ part alone is small
    assert -10.0 < e["tip3p"] < -2.0
    assert e["water_model"] < 0.0
    assert abs(e["lj"]) < 2.0


def test_cluster_rejects_waters_out_of_order(bench):
    with pytest.raises(ValueError, match="O, H, H"):
        bench.Cluster("bad", ("O", "H", "H", "H", "O", "H"), np.zeros((6, 3)), n_solute=3, charge=0)
