"""PySCF's memory limit in a large environment, side by side: the QM step of the solvated enzyme
(data/examples/enzyme_qm_ml_mm.yaml, 43,048 atoms) with the limit counted on top of what the process holds
(`PySCFEngine(memory_MB=4000)`, qmml's way) and with PySCF's own absolute limit of 4000 MB for the whole
process once the process holds more than that (as the enzyme scan's did, 4-9 GB): nothing is left for the
density-fitting tensors, which go to a file and are read back in every Fock build.

    OMP_NUM_THREADS=1 python benchmarks/qm_memory_limit.py --method hf --basis sto-3g --rounds 2
    OMP_NUM_THREADS=1 python benchmarks/qm_memory_limit.py --rounds 1       # the example's B3LYP/6-31G*

One process, one Hamiltonian; the two settings alternate on the same engine, each step at positions moved by
0.001 Å from the last (as in MD), so both start their SCF from the same kind of guess.  Appends to RESULTS.md
unless --no-write.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _revisions import append_results  # noqa: E402

#: PySCF's default limit for the whole process, MB (pyscf.lib.param.MAX_MEMORY)
PYSCF_DEFAULT_MB = 4000.0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", help="replace the example's QM method (e.g. hf)")
    parser.add_argument("--basis", help="replace the example's basis (e.g. sto-3g)")
    parser.add_argument("--rounds", type=int, default=2, help="steps per setting")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args(argv)

    from pyscf import lib

    from qmml import jobs
    from qmml.config import load_config

    overrides = [f"qm.{k}={v}" for k, v in (("method", args.method), ("basis", args.basis)) if v]
    config, _ = load_config(ROOT / "data" / "examples" / "enzyme_qm_ml_mm.yaml", overrides)
    ham = jobs.build_potential(config)
    engine = ham.qm
    x = ham.partition.system.positions.copy()
    ham.compute(x)  # SCF from the atomic guess, contexts and pair lists built
    held_mb = lib.current_memory()[0]
    # max_memory = held + memory_MB; PySCF's absolute limit leaves max(0, 4000 - held) once the process is large
    settings = {"relative (qmml)": PYSCF_DEFAULT_MB, "absolute (PySCF's), process over 4000 MB": 1.0}
    times = {name: [] for name in settings}
    for _ in range(args.rounds):
        for name, memory in settings.items():
            engine.memory_MB = memory
            x = x + 1e-3
            clock = time.perf_counter()
            ham.compute(x)
            times[name].append(time.perf_counter() - clock)
            print(f"{name}: {times[name][-1]:.1f} s", flush=True)
    new, old = (statistics.median(times[name]) for name in settings)
    table = "\n".join([
        "| PySCF memory limit | median s per step |", "|---|---|",
        f"| 4000 MB on top of the process (`PySCFEngine(memory_MB=4000)`) | {new:.1f} |",
        f"| 4000 MB for the whole process (PySCF's default; qmml before), the process holding more | {old:.1f} |",
        "", f"Speed-up {old / new:.1f}x."])
    note = (f"one QM/ML/MM step with forces ({config.qm.method}/{config.qm.basis}, density fitting), {args.rounds} per "
            f"setting, alternating; the process held {held_mb:.0f} MB after the first step")
    command = f"python benchmarks/qm_memory_limit.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}"
    print(table)
    if not args.no_write:
        append_results("PySCF's memory limit in the 43,048-atom enzyme, side by side", command, note, table)


if __name__ == "__main__":
    main()
