"""Embedded single point (energy + QM forces + charge-site forces) against pyscf.qmmm, in one run.

    python benchmarks/embedding_vs_pyscf_qmmm.py [--sites 1000 10000] [--basis 6-31g*]

A QM water (HF) in N random point charges (TIP3P-like, net neutral) in a 30 Å cube. Both codes do
the same work: SCF, nuclear gradient, and the gradient on every charge. Prints the time ratio
pyscf.qmmm / qmml per size and appends a table to benchmarks/RESULTS.md with the machine and date.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np
from pyscf import grad, gto, scf
from pyscf.qmmm import itrf

import qmml

WATER = np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.587], [0.0, -0.757, 0.587]])


def charges(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-15, 15, size=(n, 3))
    xyz = xyz[np.linalg.norm(xyz, axis=1) > 3.0]
    xyz = xyz[: len(xyz) - len(xyz) % 3]
    q = np.tile([-0.834, 0.417, 0.417], len(xyz) // 3)
    return xyz, q


def run_qmml(basis, xyz, q):
    engine = qmml.PySCFEngine("hf", basis)
    start = time.perf_counter()
    result = engine.compute(["O", "H", "H"], WATER, site_positions=xyz, site_charges=q)
    return time.perf_counter() - start, result.energy


def run_pyscf(basis, xyz, q):
    start = time.perf_counter()
    mol = gto.M(atom=[("O", WATER[0]), ("H", WATER[1]), ("H", WATER[2])], basis=basis, verbose=0)
    mf = itrf.mm_charge(scf.RHF(mol), xyz, q)
    mf.conv_tol = 1e-9
    energy = mf.kernel()
    g = itrf.mm_charge_grad(grad.RHF(mf), xyz, q)
    g.kernel()
    g.grad_hcore_mm(mf.make_rdm1()) + g.grad_nuc_mm()
    return time.perf_counter() - start, energy * qmml.units.HARTREE_EV


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--basis", default="6-31g*")
    args = parser.parse_args()
    rows = []
    for n in args.sites:
        xyz, q = charges(n)
        t_qmml, e_qmml = run_qmml(args.basis, xyz, q)
        t_pyscf, e_pyscf = run_pyscf(args.basis, xyz, q)
        rows.append((len(q), t_qmml, t_pyscf, t_pyscf / t_qmml, abs(e_qmml - e_pyscf)))
        print(f"{len(q):7d} charges: qmml {t_qmml:7.2f} s, pyscf.qmmm {t_pyscf:7.2f} s, "
              f"ratio {t_pyscf / t_qmml:5.2f}, |dE| {abs(e_qmml - e_pyscf):.1e} eV", flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    lines = [f"\n## Embedded single point vs pyscf.qmmm ({datetime.date.today()}, {machine})\n",
             f"HF/{args.basis} water in N point charges; energy + QM forces + forces on all charges.\n",
             "| charges | qmml (s) | pyscf.qmmm (s) | pyscf.qmmm / qmml | abs(dE) (eV) |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {n} | {a:.2f} | {b:.2f} | {r:.2f} | {d:.1e} |" for n, a, b, r, d in rows]
    results = Path(__file__).with_name("RESULTS.md")
    if not results.exists():
        results.write_text("# Benchmark results\n\nEach section: what was measured, machine, date.\n")
    with results.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
