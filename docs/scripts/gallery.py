"""Make the gallery's stored outputs and figures (docs/gallery.md): each worked example run briefly, its printed
output kept as ``docs/_static/gallery/<name>.txt`` and its figure as ``<name>.png``.

    python docs/scripts/gallery.py                 # all examples, ~6 min on 2 cores
    python docs/scripts/gallery.py main pimd       # some of them

Examples: ``main`` (the README's main job, 40 of its 200 steps), ``npt`` (docs/examples/npt_water.py --quick),
``ions`` (docs/examples/ion_transport.py --quick), ``pimd`` (docs/examples/pimd_water_isotopes.py, 200 steps),
``ase`` (an ASE BFGS optimization of 6 ML waters through `QMMLCalculator`), ``ipi`` (8-bead PIMD of 6 ML waters,
i-PI driving `IPIClient`).  Runs go to a temporary folder; nothing else is written.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "_static" / "gallery"


def run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def keep(name: str, text: str, figure, run_dir: Path | None = None, shown_as: str = "") -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    if run_dir is not None:  # the temporary folder, as the reader's command names it
        text = text.replace(str(run_dir), shown_as)
    (OUT / f"{name}.txt").write_text(text.strip() + "\n")
    if isinstance(figure, Path):  # the example's own figure
        shutil.copyfile(figure, OUT / f"{name}.png")
    else:
        figure.savefig(OUT / f"{name}.png", dpi=90)
        plt.close(figure)
    print(f"gallery: {name}")


def thermo_figure(thermo, columns, title):
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.2))
    for ax, (column, label) in zip(np.atleast_1d(axes), columns):
        values = np.asarray(thermo[column])
        ax.plot(thermo["time_fs"], values - values[0] if column.endswith("_eV") else values)
        ax.set(xlabel="time (fs)", ylabel=label)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def main_job(tmp: Path) -> None:
    from qmml.md import read_thermo

    out = tmp / "main_run"
    text = run(["qmml", "run", str(ROOT / "data/examples/sn2_in_water.yaml"), "--set", "md.steps=40",
                "--set", f"md.run_dir={out}", "--set", "md.progress=false"], ROOT)
    thermo = read_thermo(out / "thermo.csv")
    keep("main", text, thermo_figure(thermo, [("potential_eV", "potential energy - start (eV)"),
                                              ("temperature_K", "temperature (K)")],
                                     "SN2 complex (HF/6-31G*) in 41 ML waters, first 20 fs"),
         out, "data/examples/sn2_in_water_run")


def npt(tmp: Path) -> None:
    from qmml.md import read_thermo

    out = tmp / "npt"
    text = run([sys.executable, str(ROOT / "docs/examples/npt_water.py"), "--quick", "--out", str(out)], ROOT)
    thermo = read_thermo(out / "thermo.csv")
    keep("npt", text, thermo_figure(thermo, [("density_g_per_cm3", "density (g/cm³)"),
                                             ("pressure_bar", "pressure (bar)")],
                                    "128 ML waters at 300 K and 1 bar (200 steps)"), out, "npt_water_run")


def ions(tmp: Path) -> None:
    out = tmp / "ions"
    text = run([sys.executable, str(ROOT / "docs/examples/ion_transport.py"), "--quick", "--out", str(out)], ROOT)
    keep("ions", text, out / "transport.png", out, "ion_transport_run")


def pimd(tmp: Path) -> None:
    sys.path.insert(0, str(ROOT / "docs" / "examples"))
    from pimd_water_isotopes import main as isotopes

    from qmml import units

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        result = isotopes(200)
    classical = 1.5 * units.BOLTZMANN_EV_PER_K * 300.0 * 1e3
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.bar(list(result), [1e3 * v for v in result.values()], color=["C0", "C1", "C2"])
    ax.axhline(classical, color="k", ls="--", lw=1, label="classical 3kT/2")
    ax.set(ylabel="kinetic energy per atom (meV)", title="16-bead PIMD of 20 ML waters, 300 K")
    ax.legend(fontsize=8)
    fig.tight_layout()
    keep("pimd", buffer.getvalue(), fig)


def ase_optimization(tmp: Path) -> None:
    from ase.optimize import BFGS

    import qmml
    from qmml.interfaces import QMMLCalculator, to_ase_atoms

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import water_cluster

    system = water_cluster(6)
    atoms = to_ase_atoms(system, calculator=QMMLCalculator(qmml.MLPotential(qmml.load_model("water"), system)))
    energies = []
    optimizer = BFGS(atoms, logfile=None)
    optimizer.attach(lambda: energies.append(atoms.get_potential_energy()))
    optimizer.run(fmax=0.02, steps=200)
    text = (f"BFGS: {len(energies) - 1} steps, energy {energies[0]:.4f} -> {energies[-1]:.4f} eV, "
            f"largest force {np.linalg.norm(atoms.get_forces(), axis=1).max():.3f} eV/Å")
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(np.array(energies) - energies[-1], "o-", ms=3)
    ax.set(yscale="log", xlabel="BFGS step", ylabel="E - E_final (eV)", title="6 ML waters through ASE")
    fig.tight_layout()
    keep("ase", text, fig)


def ipi(tmp: Path) -> None:
    import qmml
    from qmml import units
    from qmml.interfaces import IPIClient

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import water_cluster
    from test_interfaces import run_ipi, write_ipi_input

    folder = tmp / "ipi"
    folder.mkdir()
    system = water_cluster(6)
    address = write_ipi_input(folder, system, beads=8, steps=80)
    client = IPIClient(qmml.MLPotential(qmml.load_model("water"), system), address, connect_timeout_s=30)
    run_ipi(folder, address, client.run, timeout_s=600.0)
    table = np.loadtxt(folder / "sim.out", ndmin=2)
    text = (f"i-PI: 8 beads, {len(table) - 1} steps; qmml served {client.n_evaluations} evaluations; "
            f"last bead-averaged potential {table[-1, -1] * units.HARTREE_EV:.4f} eV")
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(table[:, 1], (table[:, -1] - table[0, -1]) * units.HARTREE_EV)
    ax.set(xlabel="time (fs)", ylabel="bead-averaged potential - start (eV)", title="i-PI PIMD of 6 ML waters")
    fig.tight_layout()
    keep("ipi", text, fig)


EXAMPLES = {"main": main_job, "npt": npt, "ions": ions, "pimd": pimd, "ase": ase_optimization, "ipi": ipi}


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(EXAMPLES)
    unknown = [n for n in names if n not in EXAMPLES]
    if unknown:
        sys.exit(f"unknown example(s) {unknown}; choose from {list(EXAMPLES)}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            EXAMPLES[name](Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
