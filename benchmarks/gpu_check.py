"""GPU path check: qmml with device="gpu" against device="cpu" on the same machine, in one process.

    python benchmarks/gpu_check.py [--sizes 10000 100000] [--methods hf b3lyp] [--out gpu.md]

Needs CUDA and gpu4pyscf.  Glycine/6-31G* in the water charges of `bench_step.py`: for each size it
runs the MD-like trajectory of `bench_step.py` on the CPU and on the GPU (exact embedding, and the
GPU with the far field), prints the time of the last step, the GPU speed-up and the energy and
gradient differences between the two devices, and writes a Markdown table to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform

import numpy as np

from bench_step import gradient_au, qmml_run, trajectory, water_charges

from qmml import units
from qmml.qm.gpu import gpu_available


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--methods", nargs="+", default=["hf", "b3lyp"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--far-field-A", type=float, default=15.0)
    parser.add_argument("--cpu-above", type=int, default=None, help="skip the CPU run for sizes above this")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if not gpu_available():
        raise SystemExit("no GPU: gpu4pyscf or CUDA is missing")
    import cupy

    gpu_name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    geometries = trajectory(args.steps)
    rows = []
    for method in args.methods:
        gas, t_gas, _, _ = qmml_run(method, "gpu", geometries, None, None)
        for n in args.sizes:
            xyz, q = water_charges(n, geometries[0].mean(axis=0))
            gpu, t_gpu, _, _ = qmml_run(method, "gpu", geometries, xyz, q)
            far, t_far, _, _ = qmml_run(method, "gpu", geometries, xyz, q, args.far_field_A)
            row = dict(method=method, n=len(q), gpu=t_gpu, far=t_far, gas=t_gas, cycles=gpu.scf_cycles,
                       far_dE=abs(far.energy - gpu.energy) / units.HARTREE_EV)
            if args.cpu_above is None or n <= args.cpu_above:
                cpu, t_cpu, _, _ = qmml_run(method, "cpu", geometries, xyz, q)
                row.update(cpu=t_cpu, dE=abs(cpu.energy - gpu.energy) / units.HARTREE_EV,
                           dG=float(np.abs(gradient_au(cpu) - gradient_au(gpu)).max()))
            rows.append(row)
            print(row, flush=True)
    lines = [f"\n## GPU path, qmml device='gpu' vs 'cpu' ({datetime.date.today().isoformat()}, {gpu_name}, "
             f"{os.cpu_count()} CPU cores, Python {platform.python_version()})\n",
             "Glycine/6-31G* in N water charges (`bench_step.py`'s system), energy + all forces, last step of a "
             f"{args.steps}-step trajectory with the extrapolated guess. `python benchmarks/gpu_check.py`.\n",
             "| method | N | CPU (s) | GPU (s) | CPU / GPU | abs dE (Eh) | max abs dG (Eh/Bohr) | GPU far field (s) | "
             "far / gas GPU | far abs dE (Eh) | SCF cycles |",
             "| --- " * 11 + "|"]
    for r in rows:
        cpu = f"{r['cpu']:.2f}" if "cpu" in r else "n/a"
        ratio = f"{r['cpu'] / r['gpu']:.1f}" if "cpu" in r else "n/a"
        de = f"{r['dE']:.1e}" if "dE" in r else "n/a"
        dg = f"{r['dG']:.1e}" if "dG" in r else "n/a"
        lines.append(f"| {r['method']} | {r['n']:,} | {cpu} | {r['gpu']:.2f} | {ratio} | {de} | {dg} | "
                     f"{r['far']:.2f} | {r['far'] / r['gas']:.2f} | {r['far_dE']:.1e} | {r['cycles']} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table)


if __name__ == "__main__":
    main()
