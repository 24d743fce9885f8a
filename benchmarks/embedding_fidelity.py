"""Embedding fidelity: do qmml's ML charges embed a QM solute like full QM does?

For each solute of ``data/structures/embedding_set/`` (made by ``data/scripts/make_embedding_set.py``:
Cl-, Na+, acetate, methylammonium, methanol, N-methylacetamide, imidazole and water, each with its
nearest 16 waters from a GFN2-xTB-relaxed solvation shell) the solute-water interaction energy is
computed four ways, at HF/6-31G* and B3LYP/6-31G* (PySCF through `qmml.PySCFEngine`, density
fitting):

* full QM:   E_int = E(cluster) - E(solute) - E(waters), all at the cluster geometry, the solute's
  charge on the cluster and the solute, 0 on the waters.  No counterpoise correction (the basis-set
  superposition error makes full QM somewhat more attractive than the complete-basis answer);
  ``--counterpoise`` adds the Boys-Bernardi corrected value (solute and waters each in the whole
  cluster's basis) as a second reference column.
* QM/ML:     E_int = E_QM(solute in the charges of the 16 waters) - E_QM(solute in vacuum) + E_LJ,
  where the charges are those the shipped ``water`` model (or ``organic`` model) predicts for the 16
  waters by themselves, and E_LJ is qmml's QM-environment Lennard-Jones term (`qmml.coupling.vdw`, UFF with
  CHARMM TIP3P polar hydrogens).  It is exactly what `qmml.Hamiltonian` (additive scheme, its
  defaults: point charges, no charge smearing, LJ on) computes: qm_energy + vdw_energy.
* QM/TIP3P:  the same with fixed TIP3P charges (O -0.834 e, H +0.417 e) and the same LJ.

Goal (the issue's acceptance): the ML charges' mean absolute error against full QM over the set is
at most TIP3P's.

    OMP_NUM_THREADS=1 python benchmarks/embedding_fidelity.py            # runs, then appends to RESULTS.md
    python benchmarks/embedding_fidelity.py --report-only --no-append     # tables from what is done

Resumable: every (method, solute, quantity) result goes to ``--out`` (default
``benchmarks/embedding_fidelity_results/``) as one JSON file as soon as it is computed, and is
skipped when present (and computed for the same structure); a killed run continues where it stopped.
The loop is method-major (all HF first).  Energies in the files are eV; the tables are kcal/mol.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SET_DIR = ROOT / "data" / "structures" / "embedding_set"
OUT_DIR = Path(__file__).resolve().parent / "embedding_fidelity_results"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

#: Order of the tables.
SOLUTES = ("chloride", "sodium", "acetate", "methylammonium", "methanol", "n_methylacetamide", "imidazole", "water")
LABELS = {"chloride": "Cl⁻", "sodium": "Na⁺", "acetate": "acetate CH₃COO⁻", "methylammonium": "methylammonium CH₃NH₃⁺",
          "methanol": "methanol", "n_methylacetamide": "N-methylacetamide", "imidazole": "imidazole",
          "water": "water"}
TIP3P_CHARGES = (-0.834, 0.417, 0.417)  # O, H, H, e
#: Full-QM energies (eV) and the embedded-solute calculations, in the order they are run.
FULL_QM = ("cluster", "solute", "waters")
EMBEDDINGS = ("water_model", "organic_model", "tip3p")
QUANTITIES = FULL_QM + tuple(f"embedded_{e}" for e in EMBEDDINGS)
#: Optional (``--counterpoise``): solute and waters each in the whole cluster's basis (the other part as
#: ghost atoms, PySCF's "ghost-X"), for the Boys-Bernardi counterpoise-corrected full-QM reference.
COUNTERPOISE = ("solute_cp", "waters_cp")
#: Covalent radii (Å) for guessing the solute's bonds (Cordero et al., Dalton Trans. 2008, 2832).
COVALENT_RADII_A = {"H": 0.31, "C": 0.76, "N": 0.71, "O": 0.66, "Na": 1.66, "Cl": 1.02, "S": 1.05}


@dataclass(frozen=True)
class Cluster:
    """A solute and its waters.

    Attributes
    ----------
    name : str
    elements : tuple of str
        Solute atoms first, then the waters as O, H, H.
    positions : ndarray (n_atoms, 3)
        Å.
    n_solute : int
        Number of solute atoms.
    charge : int
        Charge of the solute (and of the cluster; the waters are neutral), e.
    """

    name: str
    elements: tuple
    positions: np.ndarray
    n_solute: int
    charge: int

    def __post_init__(self):
        n_water_atoms = len(self.elements) - self.n_solute
        if n_water_atoms <= 0 or n_water_atoms % 3 or \
                any(tuple(self.elements[i:i + 3]) != ("O", "H", "H") for i in range(self.n_solute, len(self.elements), 3)):
            raise ValueError(f"{self.name}: after the {self.n_solute} solute atoms every water must be O, H, H")
        if np.shape(self.positions) != (len(self.elements), 3):
            raise ValueError(f"{self.name}: positions have shape {np.shape(self.positions)}, "
                             f"expected ({len(self.elements)}, 3)")

    @property
    def n_waters(self) -> int:
        return (len(self.elements) - self.n_solute) // 3

    @property
    def digest(self) -> str:
        """Short hash of the elements, positions and charge: results of another structure are stale."""
        h = hashlib.sha256(repr((self.elements, self.n_solute, self.charge)).encode())
        h.update(np.round(np.asarray(self.positions, float), 6).tobytes())
        return h.hexdigest()[:16]

    def bonds(self) -> list[tuple[int, int]]:
        """Solute bonds from covalent radii (d < 1.25 (r_a + r_b)) and the O-H bonds of each water."""
        bonds = []
        x, el = np.asarray(self.positions), self.elements
        for i in range(self.n_solute):
            for j in range(i + 1, self.n_solute):
                if np.linalg.norm(x[i] - x[j]) < 1.25 * (COVALENT_RADII_A[el[i]] + COVALENT_RADII_A[el[j]]):
                    bonds.append((i, j))
        if self.n_solute > 1:
            import networkx as nx

            graph = nx.Graph(bonds)
            graph.add_nodes_from(range(self.n_solute))
            if not nx.is_connected(graph):
                raise ValueError(f"{self.name}: the solute's guessed bonds do not connect its {self.n_solute} atoms; "
                                 "check the structure")
        for o in range(self.n_solute, len(el), 3):
            bonds += [(o, o + 1), (o, o + 2)]
        return bonds


def load_cluster(path: Path) -> Cluster:
    """Read one ``embedding_set/*.xyz`` file (comment line: ``charge=`` and ``n_solute=``)."""
    lines = Path(path).read_text().splitlines()
    n = int(lines[0])
    info = dict(item.split("=", 1) for item in lines[1].split() if "=" in item)
    if "charge" not in info or "n_solute" not in info:
        raise ValueError(f"{path}: the comment line must carry charge= and n_solute=")
    rows = [ln.split() for ln in lines[2:2 + n]]
    return Cluster(info.get("solute", Path(path).stem), tuple(r[0] for r in rows),
                   np.array([[float(v) for v in r[1:4]] for r in rows]), int(info["n_solute"]), int(info["charge"]))


def make_engine(method: str, basis: str = "6-31g*"):
    """`qmml.PySCFEngine` with density fitting; each SCF starts from the last density of the same
    molecule (vacuum -> embedded solute) and is converged to 1e-8 Eh, far below the interaction
    energies' 1e-4 Eh scale."""
    import qmml

    return qmml.PySCFEngine(method, basis, density_fit=True, conv_tol=1e-8, guess="previous")


def embedding_environment(kind: str, cluster: Cluster):
    """The environment of the waters: an `MLEnvironment` of a shipped model, or fixed TIP3P charges."""
    import qmml
    from qmml.environments.ml import MLEnvironment

    if kind == "tip3p":
        return qmml.FixedCharges(np.tile(TIP3P_CHARGES, cluster.n_waters))
    if kind in ("water_model", "organic_model"):
        # the waters alone carry no net charge; MLEnvironment groups them as the model conserves charge
        # (water: per molecule; organic: per structure)
        return MLEnvironment(qmml.load_model(model_file(kind.removesuffix("_model"))), total_charge=cluster.charge)
    raise ValueError(f"unknown embedding {kind!r}; choose from {EMBEDDINGS}")


def compute_quantity(quantity: str, cluster: Cluster, engine) -> dict:
    """One calculation of the benchmark.

    Parameters
    ----------
    quantity : str
        "cluster", "solute", "waters" (full-QM energies), "solute_cp", "waters_cp" (the same in the
        whole cluster's basis, the other part as ghost atoms) or "embedded_<embedding>" with
        <embedding> one of "water_model", "organic_model", "tip3p".
    cluster : Cluster
    engine : qmml.PySCFEngine

    Returns
    -------
    dict
        ``energy_eV`` (full QM), or ``qm_energy_eV`` (embedded SCF + nuclei-charge energy),
        ``vdw_energy_eV`` (Lennard-Jones) and the water charges' mean O and H values (e) for an
        embedding; always ``wall_s`` and ``scf_cycles``.
    """
    import qmml

    n = cluster.n_solute
    el, x = list(cluster.elements), np.asarray(cluster.positions, float)
    start = time.perf_counter()
    if quantity in FULL_QM:
        sel = {"cluster": slice(None), "solute": slice(0, n), "waters": slice(n, None)}[quantity]
        charge = 0 if quantity == "waters" else cluster.charge
        r = engine.compute(el[sel], x[sel], charge=charge, forces=False)
        return {"energy_eV": r.energy, "scf_cycles": r.scf_cycles, "wall_s": time.perf_counter() - start}
    if quantity in COUNTERPOISE:
        real = np.arange(len(el)) < n if quantity == "solute_cp" else np.arange(len(el)) >= n
        ghosted = [e if keep else f"ghost-{e}" for e, keep in zip(el, real)]
        charge = cluster.charge if quantity == "solute_cp" else 0
        r = engine.compute(ghosted, x, charge=charge, forces=False)
        return {"energy_eV": r.energy, "scf_cycles": r.scf_cycles, "wall_s": time.perf_counter() - start}
    kind = quantity.removeprefix("embedded_")
    residues = [1] * n + [2 + k // 3 for k in range(len(el) - n)]
    system = qmml.System.from_arrays(el, x, bonds=cluster.bonds(), residues=residues)
    part = qmml.partition(system, np.arange(n), charge=cluster.charge)
    ham = qmml.Hamiltonian(part, engine, embedding_environment(kind, cluster))  # additive, LJ, point charges
    r = ham.compute(x, forces=False)
    q = np.asarray(r.env_charges).reshape(-1, 3)
    return {"qm_energy_eV": r.qm_energy, "vdw_energy_eV": r.vdw_energy, "scf_cycles": r.scf_cycles,
            "mean_q_O": float(q[:, 0].mean()), "mean_q_H": float(q[:, 1:].mean()),
            "env_charge_total": float(q.sum()), "wall_s": time.perf_counter() - start}


def interaction_energies(results: dict) -> dict:
    """Solute-water interaction energies (kcal/mol) from the quantities of one solute and method.

    Returns ``{"full_qm": ..., "water_model": ..., "organic_model": ..., "tip3p": ..., "lj": ...}``
    (and ``"full_qm_cp"``, counterpoise-corrected, with the `COUNTERPOISE` quantities) for whatever the
    inputs allow (missing inputs give no entry).
    """
    from qmml import units

    kcal = 1.0 / units.KCAL_PER_MOL_EV
    out = {}
    if all(k in results for k in FULL_QM):
        out["full_qm"] = (results["cluster"]["energy_eV"] - results["solute"]["energy_eV"]
                          - results["waters"]["energy_eV"]) * kcal
    if "cluster" in results and all(k in results for k in COUNTERPOISE):
        out["full_qm_cp"] = (results["cluster"]["energy_eV"] - results["solute_cp"]["energy_eV"]
                             - results["waters_cp"]["energy_eV"]) * kcal
    for kind in EMBEDDINGS:
        r = results.get(f"embedded_{kind}")
        if r is not None and "solute" in results:
            out[kind] = (r["qm_energy_eV"] - results["solute"]["energy_eV"] + r["vdw_energy_eV"]) * kcal
            out["lj"] = r["vdw_energy_eV"] * kcal
    return out


def cluster_interaction_energies(cluster: Cluster, engine, embeddings=EMBEDDINGS) -> dict:
    """All quantities of one cluster without any caching (small systems, tests); kcal/mol."""
    quantities = FULL_QM + tuple(f"embedded_{e}" for e in embeddings)
    return interaction_energies({q: compute_quantity(q, cluster, engine) for q in quantities})


# -- the resumable run ---------------------------------------------------------------------
def result_path(out: Path, method: str, solute: str, quantity: str) -> Path:
    return out / f"{method}_{solute}_{quantity}.json"


#: model files in place of the shipped ones (``--water-model``, ``--organic-model``)
MODEL_FILES: dict = {}


def model_file(name: str) -> Path:
    from qmml.ml.io import SHIPPED_MODELS

    return Path(MODEL_FILES.get(name) or SHIPPED_MODELS / f"{name}.pt")


def model_digest(quantity: str) -> str | None:
    """SHA-256 (16 hex digits) of the model file an ML embedding uses; None for other quantities."""
    kind = quantity.removeprefix("embedded_")
    if not kind.endswith("_model"):
        return None
    return hashlib.sha256(model_file(kind.removesuffix("_model")).read_bytes()).hexdigest()[:16]


def load_result(out: Path, method: str, cluster: Cluster, quantity: str) -> dict | None:
    path = result_path(out, method, cluster.name, quantity)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if data.get("structure") != cluster.digest:
        print(f"  {path.name}: computed for another structure, recomputing", flush=True)
        return None
    digest = model_digest(quantity)
    if digest is not None and data.get("model") != digest:
        print(f"  {path.name}: computed with another {quantity.removeprefix('embedded_')}, recomputing", flush=True)
        return None
    return data


def run(methods, solutes, basis: str, out: Path, counterpoise: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    clusters = {s: load_cluster(SET_DIR / f"{s}.xyz") for s in solutes}
    for method in methods:  # method-major: all of HF before any B3LYP
        engine = make_engine(method, basis)
        for solute, cluster in clusters.items():
            for quantity in QUANTITIES + (COUNTERPOISE if counterpoise else ()):
                if load_result(out, method, cluster, quantity) is not None:
                    continue
                t0 = time.strftime("%H:%M:%S")
                print(f"{t0} {method}/{basis} {solute} ({len(cluster.elements)} atoms): {quantity} ...", end=" ",
                      flush=True)
                data = compute_quantity(quantity, cluster, engine)
                data.update(method=method, basis=basis, solute=solute, quantity=quantity, structure=cluster.digest,
                            model=model_digest(quantity), omp_num_threads=os.environ.get("OMP_NUM_THREADS"))
                path = result_path(out, method, solute, quantity)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(data, indent=1))
                tmp.replace(path)  # atomic: a killed run never leaves half a file
                print(f"{data['wall_s']:.0f} s, {data['scf_cycles']} SCF cycles", flush=True)


def collect(method: str, solutes, out: Path) -> dict:
    """Interaction energies (kcal/mol) and total wall time (s) per solute for one method."""
    rows = {}
    for s in solutes:
        cluster = load_cluster(SET_DIR / f"{s}.xyz")
        results = {q: r for q in QUANTITIES + COUNTERPOISE
                   if (r := load_result(out, method, cluster, q)) is not None}
        if results:
            rows[s] = {**interaction_energies(results),
                       "wall_s": sum(r["wall_s"] for q, r in results.items() if q in QUANTITIES),
                       "cp_s": sum(r["wall_s"] for q, r in results.items() if q in COUNTERPOISE),
                       "complete": all(q in results for q in QUANTITIES),
                       "charges": {k: (results[f"embedded_{k}"]["mean_q_O"], results[f"embedded_{k}"]["mean_q_H"])
                                   for k in EMBEDDINGS if f"embedded_{k}" in results},
                       "n_atoms": len(cluster.elements),
                       "cluster_s": results.get("cluster", {}).get("wall_s"),
                       "waters_s": results.get("waters", {}).get("wall_s")}
    return rows


def _stats(rows: dict, reference: str) -> dict:
    """MAE, mean signed error (kcal/mol) and count of each embedding against ``reference``."""
    errors = {k: [r[k] - r[reference] for r in rows.values() if r.get(k) is not None and r.get(reference) is not None]
              for k in EMBEDDINGS}
    return {k: (float(np.mean(np.abs(e))), float(np.mean(e)), len(e)) for k, e in errors.items() if e}


def table(method: str, basis: str, rows: dict) -> tuple[str, dict, dict]:
    """Markdown table of one method and the MAE / mean signed error of each embedding (kcal/mol),
    against the uncorrected full QM and, where computed, the counterpoise-corrected one."""
    def f(v):
        return "-" if v is None else f"{v:+.2f}"

    cp = any(r.get("full_qm_cp") is not None for r in rows.values())
    lines = [f"**{method.upper()}/{basis}** (kcal/mol; error = embedding - full QM)\n",
             "| solute | atoms | full QM | " + ("full QM, CP-corrected | " if cp else "") +
             "QM/ML `water` + LJ | QM/ML `organic` + LJ | QM/TIP3P + LJ | LJ part | QM time (s) |",
             "| --- " * (8 + cp) + "|"]
    for s, r in rows.items():
        lines.append(f"| {LABELS[s]} | {r['n_atoms']} | {f(r.get('full_qm'))} | "
                     + (f"{f(r.get('full_qm_cp'))} | " if cp else "") +
                     f"{f(r.get('water_model'))} | {f(r.get('organic_model'))} | {f(r.get('tip3p'))} | "
                     f"{f(r.get('lj'))} | {r['wall_s']:.0f} |")
    stats, stats_cp = _stats(rows, "full_qm"), (_stats(rows, "full_qm_cp") if cp else {})
    pad = "| | |" + (" |" if cp else "") + " "  # the empty atoms, full QM (and CP) cells
    for label, st in (("**MAE**", stats), ("mean signed error", stats)) + \
            ((("MAE vs CP-corrected", stats_cp), ("mean signed error vs CP-corrected", stats_cp)) if cp else ()):
        if not st:
            continue
        mae = label.startswith(("**MAE", "MAE"))
        cells = [("-" if k not in st else (f"{st[k][0]:.2f}" if mae else f"{st[k][1]:+.2f}")) for k in EMBEDDINGS]
        if label == "**MAE**":
            cells = [c if c == "-" else f"**{c}**" for c in cells]
        lines.append(f"| {label} " + pad + " | ".join(cells) + " | | |")
    return "\n".join(lines) + "\n", stats, stats_cp


def report(methods, solutes, basis: str, out: Path, append: bool) -> str:
    import pyscf

    import qmml

    sections = []
    verdicts = []
    complete = True
    for method in methods:
        rows = collect(method, solutes, out)
        complete &= len(rows) == len(solutes) and all(r["complete"] for r in rows.values())
        if not rows:
            sections.append(f"**{method.upper()}/{basis}**: no results yet.\n")
            continue
        text, stats, stats_cp = table(method, basis, rows)
        sections.append(text)
        for st, ref in ((stats, "full QM"), (stats_cp, "CP-corrected full QM")):
            if "tip3p" not in st:
                continue
            n = st["tip3p"][2]
            for k in ("water_model", "organic_model"):
                if k in st:
                    ok = st[k][0] <= st["tip3p"][0]
                    verdicts.append(f"{method.upper()}, against {ref}: `{k.removesuffix('_model')}` charges MAE "
                                    f"{st[k][0]:.2f} vs TIP3P {st['tip3p'][0]:.2f} kcal/mol over {n} solutes: "
                                    f"{'ML MAE <= TIP3P MAE holds' if ok else 'ML MAE > TIP3P MAE (goal not met)'}")
        charges = {k: np.mean([r["charges"][k] for r in rows.values() if k in r["charges"]], axis=0)
                   for k in EMBEDDINGS if any(k in r["charges"] for r in rows.values())}
        if charges:
            sections.append("Water charges the embeddings used (O / H, e, mean over the waters of all solutes): "
                            + ", ".join(f"`{k}` {q[0]:+.3f} / {q[1]:+.3f}" for k, q in charges.items()) + "\n")
        big = [(r["cluster_s"], r["waters_s"]) for r in rows.values() if r["cluster_s"] and r["waters_s"]]
        total = sum(r["wall_s"] for r in rows.values())
        cp_total = sum(r["cp_s"] for r in rows.values())
        if big:
            sections.append(f"{method.upper()} time: {total / 60:.0f} min for {len(rows)} solutes; cluster SCF "
                            f"{min(b[0] for b in big):.0f}-{max(b[0] for b in big):.0f} s, waters-only SCF "
                            f"{min(b[1] for b in big):.0f}-{max(b[1] for b in big):.0f} s"
                            + (f"; counterpoise (2 ghost-basis SCFs per solute) {cp_total / 60:.0f} min more"
                               if cp_total else "") + ".\n")
    # the thread count the calculations ran with (recorded in each result file), not the reporting shell's
    threads = ",".join(sorted({str(json.loads(p.read_text()).get("omp_num_threads")) for p in out.glob("*.json")})
                       or {os.environ.get("OMP_NUM_THREADS", "unset")})
    head = (f"\n## Embedding fidelity: ML charges vs TIP3P vs full QM ({date.today()}, {platform.machine()}, "
            f"{os.cpu_count()} cores, OMP_NUM_THREADS={threads}, Python {platform.python_version()}, "
            f"PySCF {pyscf.__version__}, qmml {getattr(qmml, '__version__', '?')})\n\n"
            "Solute-water interaction energy E(cluster) - E(solute) - E(waters) for 8 solutes, each with its nearest "
            "16 waters (`data/structures/embedding_set/`, from `data/scripts/make_embedding_set.py`: solute centred "
            "in the 128-water box, clashing waters removed, solute + 30 waters relaxed 0.5 ps with GFN2-xTB Langevin "
            "at 300 K, nearest 16 waters of the last frame). Full QM: all three energies at the cluster geometry, no "
            "counterpoise (the 'CP-corrected' column, where present, is the Boys-Bernardi counterpoise-corrected value "
            "from `--counterpoise`: solute and waters each in the whole cluster's basis). Embeddings: E_QM(solute in the waters' charges) - E_QM(solute in vacuum) + E_LJ, with the "
            "charges the shipped `water` / `organic` models predict for the 16 waters alone, or TIP3P (O -0.834, "
            "H +0.417), point charges (qmml's default, no Gaussian smearing), and qmml's QM-environment "
            "Lennard-Jones (UFF, CHARMM TIP3P polar H; the same for all three, column 'LJ part'). PySCF density "
            "fitting, SCF to 1e-8 Eh; B3LYP is PySCF's (VWN-RPA variant). QM time = all six SCFs of one solute. "
            "`OMP_NUM_THREADS=1 python benchmarks/embedding_fidelity.py [--counterpoise]`\n")
    for name, path in sorted(MODEL_FILES.items()):
        head += (f"\n**The `{name}` column is not the shipped model** but `{path}` "
                 f"(`--{name}-model {path}`).\n")
    if not complete:
        head += "\n**Incomplete**: some results are missing (see the '-' entries); rerun the command to continue.\n"
    text = head + "\n" + "\n".join(sections) + ("\n" + "\n".join(f"* {v}" for v in verdicts) + "\n" if verdicts else "")
    print(text)
    if append:
        with open(RESULTS, "a") as fh:
            fh.write(text)
        print(f"appended to {RESULTS}")
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description="Embedding fidelity: ML charges vs TIP3P vs full QM")
    parser.add_argument("--methods", nargs="+", default=["hf", "b3lyp"])
    parser.add_argument("--solutes", nargs="+", default=list(SOLUTES), choices=list(SOLUTES))
    parser.add_argument("--basis", default="6-31g*")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder of the per-calculation JSON files")
    parser.add_argument("--counterpoise", action="store_true",
                        help="also compute the counterpoise-corrected full-QM reference (2 more cluster-size SCFs "
                             "per solute and method)")
    parser.add_argument("--water-model", help="model file in place of the shipped `water` (use another --out)")
    parser.add_argument("--organic-model", help="model file in place of the shipped `organic` (use another --out)")
    parser.add_argument("--report-only", action="store_true", help="only print the tables of what is done")
    parser.add_argument("--no-append", action="store_true", help="do not append the tables to RESULTS.md")
    args = parser.parse_args(argv)
    MODEL_FILES.update({k: v for k, v in (("water", args.water_model), ("organic", args.organic_model)) if v})
    missing = [s for s in args.solutes if not (SET_DIR / f"{s}.xyz").exists()]
    if missing:
        sys.exit(f"no structure for {', '.join(missing)} in {SET_DIR}; run data/scripts/make_embedding_set.py")
    t0 = time.perf_counter()
    if not args.report_only:
        run(args.methods, args.solutes, args.basis, args.out, counterpoise=args.counterpoise)
        print(f"all calculations done in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    report(args.methods, args.solutes, args.basis, args.out, append=not args.no_append)


if __name__ == "__main__":
    main()
