"""Accuracy against order of the exact-embedding series: what `PySCFEngine(series_tolerance=)` buys and costs.

    python benchmarks/series_orders.py                 # 1e4 and 1e5 charges, ~6 min on 2 cores
    python benchmarks/series_orders.py --sizes 10000 --no-write

Glycine (HF/6-31G*) in `bench_step.py`'s TIP3P-charged lattice waters.  For each size, one SCF with integrals for
every site (pyscf.qmmm's way) is the reference; then for each tolerance the same geometry with the series, started
from the reference density (as an MD step starts from its extrapolated guess).  Per tolerance it prints the orders
the bounds chose (operator, response, range of the single-centre ones), the rigorous bounds reported with the
result, the actual differences from the reference and the embedding time (operator + response), and appends
the table to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _revisions import append_results  # noqa: E402
from bench_step import GLYCINE, trajectory, water_charges  # noqa: E402

import qmml  # noqa: E402
from qmml import units  # noqa: E402

TOLERANCES = (1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    geometry = trajectory(1)[0]
    elements = [e for e, _ in GLYCINE]
    force = units.HARTREE_PER_BOHR_EV_PER_A
    rows = []
    for n in args.sizes:
        xyz, q = water_charges(n, geometry.mean(axis=0))
        sites = dict(site_positions=xyz, site_charges=q)
        reference = qmml.PySCFEngine("hf", "6-31g*", conv_tol=1e-12, embedding="integrals").compute(
            elements, geometry, **sites)
        for tolerance in TOLERANCES:
            engine = qmml.PySCFEngine("hf", "6-31g*", conv_tol=1e-12, series_min_sites=0, series_tolerance=tolerance)
            engine.compute(elements, geometry, dm0=reference.density, **sites)  # warm-up: tables of the orders
            result = engine.compute(elements, geometry, dm0=reference.density, **sites)
            s = result.series
            row = {"n": len(q), "tolerance": tolerance, "orders": f"{s['energy_order']} / {s['response_order']}",
                   "single": f"{s['single_centre_energy_orders']} / {s['single_centre_gradient_orders']}",
                   "energy_bound": s["energy_bound_eV"] / units.HARTREE_EV,
                   "energy_error": abs(result.energy - reference.energy) / units.HARTREE_EV,
                   "site_bound": s["site_force_bound_eV_A"] / force,
                   "site_error": np.abs(result.site_forces - reference.site_forces).max() / force,
                   "qm_bound": s["qm_force_bound_eV_A"] / force,
                   "qm_error": np.abs(result.forces - reference.forces).max() / force,
                   "seconds": result.timings_s["embedding_operator"] + result.timings_s["embedding_response"]}
            rows.append(row)
            print(" | ".join(f"{k} {v:.1e}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    if args.no_write:
        return
    table = ["| N | tolerance (Eh) | orders | single-centre orders | energy bound / error (Eh) | site gradient bound / "
             "error (Eh/Bohr) | QM gradient bound / error (Eh/Bohr) | embedding (s) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        table.append(f"| {r['n']:,} | {r['tolerance']:.0e} | {r['orders']} | {r['single']} | {r['energy_bound']:.1e} / "
                     f"{r['energy_error']:.1e} | {r['site_bound']:.1e} / {r['site_error']:.1e} | {r['qm_bound']:.1e} / "
                     f"{r['qm_error']:.1e} | {r['seconds']:.2f} |")
    append_results("Exact-embedding series: accuracy against order", "python benchmarks/series_orders.py",
                   "glycine HF/6-31G* in N TIP3P-charged water sites, the series (`PySCFEngine(series_tolerance=)`, "
                   "`series_min_sites=0`) against integrals for every site at the same geometry, conv_tol 1e-12 Eh, both "
                   "SCFs from the reference density.  Orders: operator / response (per atom), and the single-centre "
                   "range (energy) / (response).  Bounds are what the result reports (`QMResult.series`); errors include "
                   "the SCF's own convergence noise (~1e-12 Eh, ~1e-8 Eh/Bohr).  Time: embedding operator + response.",
                   "\n".join(table))
    print("appended to benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
