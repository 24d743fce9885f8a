"""One QM/MM-embedded MD step, qmml against plain pyscf.qmmm, at 1e3, 1e4 and 1e5 environment charges.

    python benchmarks/bench_step.py                          # HF and B3LYP/6-31G*, 1e3/1e4/1e5; ~35 min on 2 cores
    python benchmarks/bench_step.py --sizes 1000 --methods hf --no-write   # a quick look
    python benchmarks/bench_step.py --device gpu             # gpu4pyscf (needs CUDA + gpu4pyscf)

System: glycine (QM) in TIP3P-charged water molecules (-0.834/+0.417 e) on a lattice around it, the
nearest N/3 molecules kept.  The QM atoms move along fixed random velocities (0.005 Å per step), as
in MD, for ``--steps`` steps; the charges stay put.  Everything runs in this one process.

Per size and method it measures, for one energy + all-forces step (forces on QM atoms and charges):

* pyscf.qmmm: ``mm_charge`` SCF, ``nuc_grad_method().kernel()``, ``grad_hcore_mm + grad_nuc_mm``;
  "cold" from PySCF's default guess, "warm" from the previous step's converged density (what a
  PySCF user would pass as dm0 along a trajectory);
* qmml exact: `PySCFEngine.compute` with the same settings; "cold" from the default guess, "MD" at
  the last step of the trajectory with its extrapolated guess;
* qmml far field: the same trajectory with each ``far_field_A`` (15 and 20 Å by default);
* the gas-phase step of the QM region along the same trajectory (cold and MD).

It prints time per step, the ratios, SCF cycles, peak resident memory during the step (the whole
process, so an upper bound) and the energy and gradient differences between qmml and pyscf.qmmm, and
appends a table to benchmarks/RESULTS.md with the machine and date.  DFT forces are compared without
grid response (pyscf.qmmm's default; qmml's MD default adds it).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np
from pyscf import gto, lib, scf
from pyscf.qmmm import itrf

import qmml
from qmml import units

ROOT = Path(__file__).resolve().parents[1]
GLYCINE = [("N", (0.000, 0.000, 0.000)), ("C", (1.450, 0.000, 0.000)), ("C", (1.980, 1.420, 0.000)),
           ("O", (1.230, 2.390, 0.000)), ("O", (3.310, 1.520, 0.000)), ("H", (-0.330, -0.940, 0.000)),
           ("H", (-0.330, 0.470, 0.820)), ("H", (1.820, -0.520, 0.890)), ("H", (1.820, -0.520, -0.890)),
           ("H", (3.600, 2.450, 0.000))]
CONV_TOL = 1e-11
PAGE = os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak resident memory of this process while the block runs, MB (sampled every 5 ms)."""

    def __enter__(self):
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _rss(self):
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * PAGE / 1e6

    def _watch(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def timed(fn):
    with PeakMemory() as memory:
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
    return out, seconds, memory.peak


def water_charges(n_charges: int, centre: np.ndarray, seed: int = 0):
    """Positions (Å) and TIP3P charges of the n_charges/3 lattice waters nearest the centre."""
    rng = np.random.default_rng(seed)
    n_waters = max(1, n_charges // 3)
    side = int(np.ceil((2.2 * n_waters) ** (1 / 3))) + 2
    grid = (np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3) - side / 2) * 3.1
    grid = grid + centre
    qm = np.array([xyz for _, xyz in GLYCINE])
    clear = np.min(np.linalg.norm(grid[:, None, :] - qm[None], axis=2), axis=1) > 3.0
    grid = grid[clear]
    grid = grid[np.argsort(np.linalg.norm(grid - centre, axis=1))[:n_waters]]
    frames = np.linalg.qr(rng.normal(size=(n_waters, 3, 3)))[0]
    oh1 = 0.9572 * frames[:, :, 0]
    oh2 = 0.9572 * (np.cos(1.824) * frames[:, :, 0] + np.sin(1.824) * frames[:, :, 1])
    xyz = np.stack([grid, grid + oh1, grid + oh2], axis=1).reshape(-1, 3)
    q = np.tile([-0.834, 0.417, 0.417], n_waters)
    return xyz, q


def trajectory(n_steps: int, seed: int = 1):
    qm = np.array([xyz for _, xyz in GLYCINE])
    velocity = np.random.default_rng(seed).normal(size=qm.shape)
    velocity *= 0.005 / np.linalg.norm(velocity, axis=1, keepdims=True)
    return [qm + k * velocity for k in range(n_steps)]


def engine(method, device, far_field_A=None):
    return qmml.PySCFEngine(method, "6-31g*", conv_tol=CONV_TOL, grid_response=False, far_field_A=far_field_A,
                            device=device)


def qmml_run(method, device, geometries, xyz, q, far_field_A=None):
    """MD-like run: warm-up steps without forces build the guess history; the last two steps are timed
    and the faster is kept (the machines are noisy)."""
    qm = engine(method, device, far_field_A)
    elements = [e for e, _ in GLYCINE]
    sites = {} if q is None else dict(site_positions=xyz, site_charges=q)
    history, key = qm.guess_history(), qm.guess_key(elements, 0, 1)  # what a Hamiltonian keeps along its trajectory

    def step(geometry, forces=True):
        result = qm.compute(elements, geometry, forces=forces, dm0=history.predict(key), **sites)
        history.push(key, result.density)
        return result

    for geometry in geometries[:-2]:
        step(geometry, forces=False)
    first = timed(lambda: step(geometries[-2]))
    previous = history.densities[0]  # converged at geometries[-2]
    result, seconds, peak = timed(lambda: step(geometries[-1]))
    return result, min(seconds, first[1]), max(peak, first[2]), previous


def qmml_cold(method, device, geometry, xyz, q):
    qm = engine(method, device)
    elements = [e for e, _ in GLYCINE]
    sites = {} if q is None else dict(site_positions=xyz, site_charges=q)
    return timed(lambda: qm.compute(elements, geometry, **sites))


def pyscf_step(method, geometry, xyz, q, dm0=None):
    mol = gto.M(atom=[(e, tuple(p)) for (e, _), p in zip(GLYCINE, geometry)], basis="6-31g*", verbose=0)

    def step():
        base = scf.RHF(mol) if method == "hf" else scf.RKS(mol).set(xc=method)
        mf = itrf.mm_charge(base, xyz, q)
        mf.conv_tol = CONV_TOL
        energy = mf.kernel(dm0=dm0)
        g = mf.nuc_grad_method()
        g_qm = g.kernel()
        g_sites = g.grad_hcore_mm(mf.make_rdm1()) + g.grad_nuc_mm()
        return energy, g_qm, g_sites, mf.cycles

    return timed(step)


def gradient_au(result):
    return -np.vstack([result.forces, result.site_forces]) / units.HARTREE_PER_BOHR_EV_PER_A


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--methods", nargs="+", default=["hf", "b3lyp"])
    parser.add_argument("--steps", type=int, default=6, help="trajectory length (the guess history)")
    parser.add_argument("--far-field-A", type=float, nargs="+", default=[15.0, 20.0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--skip-pyscf-above", type=int, default=None,
                        help="sizes above this run qmml only (pyscf.qmmm takes minutes per step at 1e5)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    geometries = trajectory(args.steps)
    centre = geometries[0].mean(axis=0)
    rows = []
    for method in args.methods:
        qmml_cold(method, args.device, geometries[0], None, None)  # warm-up: the first step of a process is slow
        gas, t_gas, _, _ = qmml_run(method, args.device, geometries, None, None)
        gas_cold, t_gas_cold, _ = qmml_cold(method, args.device, geometries[-1], None, None)
        print(f"{method} gas phase: cold {t_gas_cold:.2f} s ({gas_cold.scf_cycles} cycles), "
              f"MD {t_gas:.2f} s ({gas.scf_cycles} cycles)", flush=True)
        for n in args.sizes:
            xyz, q = water_charges(n, centre)
            row = {"method": method, "n": len(q), "gas_md": t_gas, "gas_cold": t_gas_cold,
                   "gas_cycles": gas.scf_cycles}
            md, row["qmml_md"], row["qmml_mem"], previous = qmml_run(method, args.device, geometries, xyz, q)
            row["qmml_md_cycles"] = md.scf_cycles
            cold, row["qmml_cold"], _ = qmml_cold(method, args.device, geometries[-1], xyz, q)
            row["qmml_cold_cycles"] = cold.scf_cycles
            row["far"] = []
            for cutoff in args.far_field_A:
                far, seconds, peak, _ = qmml_run(method, args.device, geometries, xyz, q, cutoff)
                row["far"].append({
                    "cutoff": cutoff, "time": seconds, "mem": peak, "cycles": far.scf_cycles,
                    "dE": abs(far.energy - md.energy) / units.HARTREE_EV,
                    "dG": np.abs(gradient_au(far) - gradient_au(md)).max(),
                    "estimate": far.far_field["error_estimate_eV"] / units.HARTREE_EV,
                    "bound": far.far_field["error_bound_eV"] / units.HARTREE_EV,
                    "exact_sites": far.far_field["n_exact"]})
            if args.skip_pyscf_above is None or n <= args.skip_pyscf_above:
                (e_ref, g_qm, g_sites, cycles), row["pyscf_warm"], row["pyscf_mem"] = pyscf_step(
                    method, geometries[-1], xyz, q, dm0=previous)
                row["pyscf_warm"] = min(row["pyscf_warm"], pyscf_step(method, geometries[-1], xyz, q, dm0=previous)[1])
                row["pyscf_warm_cycles"] = cycles
                (_, _, _, cycles), row["pyscf_cold"], _ = pyscf_step(method, geometries[-1], xyz, q)
                row["pyscf_cold_cycles"] = cycles
                row["dE"] = abs(md.energy / units.HARTREE_EV - e_ref)
                row["dG"] = np.abs(gradient_au(md) - np.vstack([g_qm, g_sites])).max()
            rows.append(row)
            print(format_row(row), flush=True)
    table = format_table(rows, args)
    print(table)
    if not args.no_write:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
            fh.write(table)
        print("appended to benchmarks/RESULTS.md")


def format_row(r):
    text = (f"{r['method']} N={r['n']}: qmml MD {r['qmml_md']:.2f} s ({r['qmml_md_cycles']} cyc), cold "
            f"{r['qmml_cold']:.2f} s ({r['qmml_cold_cycles']} cyc), mem {r['qmml_mem']:.0f} MB")
    for f in r["far"]:
        text += (f"; far field {f['cutoff']:g} A {f['time']:.2f} s = {f['time'] / r['gas_md']:.2f}x gas MD, "
                 f"|dE| {f['dE']:.1e} Eh, max|dG| {f['dG']:.1e} (est {f['estimate']:.1e}, bound {f['bound']:.1e})")
    if "dE" in r:
        text += (f"; pyscf.qmmm warm {r['pyscf_warm']:.2f} s ({r['pyscf_warm_cycles']} cyc), cold "
                 f"{r['pyscf_cold']:.2f} s ({r['pyscf_cold_cycles']} cyc), mem {r['pyscf_mem']:.0f} MB; "
                 f"MD/warm {r['qmml_md'] / r['pyscf_warm']:.2f}, cold/cold {r['qmml_cold'] / r['pyscf_cold']:.2f}; "
                 f"|dE| {r['dE']:.1e} Eh, max|dG| {r['dG']:.1e} Eh/Bohr")
    return text


def format_table(rows, args):
    today = datetime.date.today().isoformat()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {lib.num_threads()} threads, Python {platform.python_version()}"
    lines = [f"\n## One embedded MD step, qmml vs pyscf.qmmm ({today}, {machine}, device {args.device})\n",
             "Glycine (QM, 6-31G*) in N TIP3P-charged water sites; energy + forces on QM atoms and all charges. "
             f"conv_tol {CONV_TOL:g} Eh. `python benchmarks/bench_step.py`. qmml MD: the faster of the last two "
             f"steps of a {args.steps}-step trajectory with the extrapolated guess; pyscf warm: dm0 = the previous "
             "step's density, the faster of two runs; cold: default guess for both, one run. Memory: peak RSS of "
             "the whole process during the step.\n",
             "**Exact embedding**\n",
             "| method | N | pyscf.qmmm warm (s) | pyscf.qmmm cold (s) | qmml MD (s) | qmml cold (s) | MD / warm | "
             "cold / cold | abs dE (Eh) | max abs dG (Eh/Bohr) | SCF cycles pyscf warm/cold, qmml MD/cold | "
             "peak MB qmml / pyscf |",
             "| --- " * 12 + "|"]
    for r in rows:
        def get(key, spec=".2f"):
            return format(r[key], spec) if key in r else "n/a"

        ratio_md = format(r["qmml_md"] / r["pyscf_warm"], ".2f") if "dE" in r else "n/a"
        ratio_cold = format(r["qmml_cold"] / r["pyscf_cold"], ".2f") if "dE" in r else "n/a"
        cycles = f"{get('pyscf_warm_cycles', 'd')}/{get('pyscf_cold_cycles', 'd')}, {r['qmml_md_cycles']}/{r['qmml_cold_cycles']}"
        lines.append(
            f"| {r['method']} | {r['n']:,} | {get('pyscf_warm')} | {get('pyscf_cold')} | {r['qmml_md']:.2f} | "
            f"{r['qmml_cold']:.2f} | {ratio_md} | {ratio_cold} | {get('dE', '.1e')} | {get('dG', '.1e')} | "
            f"{cycles} | {r['qmml_mem']:.0f} / {get('pyscf_mem', '.0f')} |")
    lines += ["\n**Far field** (`far_field_A`; differences against qmml's exact step above)\n",
              "| method | N | far_field_A (Å) | exact sites | time MD (s) | / gas MD | SCF cycles | abs dE (Eh) | "
              "max abs dG (Eh/Bohr) | estimate (Eh) | bound (Eh) | peak MB |",
              "| --- " * 12 + "|"]
    for r in rows:
        for f in r["far"]:
            lines.append(f"| {r['method']} | {r['n']:,} | {f['cutoff']:g} | {f['exact_sites']:,} | {f['time']:.2f} | "
                         f"{f['time'] / r['gas_md']:.2f} | {f['cycles']} | {f['dE']:.1e} | {f['dG']:.1e} | {f['estimate']:.1e} | "
                         f"{f['bound']:.1e} | {f['mem']:.0f} |")
    gas = {r["method"]: (r["gas_md"], r["gas_cold"], r["gas_cycles"]) for r in rows}
    for method, (md, cold, cycles) in gas.items():
        lines.append(f"\nGas-phase step, {method}: MD {md:.2f} s ({cycles} SCF cycles), cold {cold:.2f} s.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
