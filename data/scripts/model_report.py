"""Print the accuracy tables of the shipped models (markdown) from their headers and test sets.

    python data/scripts/model_report.py                 # the shipped models
    python data/scripts/model_report.py path/to/m.pt    # other model files (named like a shipped model's
                                                        # stem or with --kind water|organic)

Each model is evaluated on its cluster test set (`data/datasets/NAME_test.npz`) and on the condensed-phase
test sets that exist so far (periodic GFN2-xTB boxes held out of training, active-learning frames of the
models' own runs, RESP charges of held-out clusters): energy, force and charge errors, and for periodic
frames the pressure error (kbar), the quantity that decides a liquid's density.
"""

import argparse
import glob
from pathlib import Path

from qmml import load_model
from qmml.ml import Dataset, evaluate, read_header
from qmml.ml.io import SHIPPED_MODELS

DATA = Path(__file__).resolve().parents[1]
#: model kind -> [(label, glob patterns relative to data/)]
TEST_SETS = {
    "water": [("clusters", ["datasets/water_test.npz"]),
              ("64-water boxes (held out)", ["campaigns/water/labels/chunk_03[0-9].npz"]),
              ("own NPT runs (AL rounds)", ["campaigns/water_al*/labels/chunk_*.npz"]),
              ("RESP charges of clusters", ["campaigns/water_esp_test/labels/chunk_*.npz"])],
    "organic": [("clusters", ["datasets/organic_test.npz"]),
                ("solutions (held out)", ["campaigns/solutions/labels/chunk_0[0-3][49].npz"]),
                ("RESP charges of solvated solutes", ["campaigns/organic_esp_test/labels/chunk_*.npz"])],
}


def load(patterns):
    """The test sets that exist so far (None if none does)."""
    existing = [p for p in patterns if glob.glob(str(DATA / p))]
    return Dataset.load_many(existing, DATA) if existing else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help="model files (default: the shipped ones)")
    parser.add_argument("--kind", choices=sorted(TEST_SETS), help="which test sets (default: from the file name)")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.models] or sorted(SHIPPED_MODELS.glob("*.pt"))
    print("| model | test set | frames / atoms | energy MAE (meV/atom) | force MAE (eV/Å) | force RMSE (eV/Å) "
          "| charge MAE (e) | pressure error: mean / MAE (kbar) | RESP charge MAE (e) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for path in paths:
        kind = args.kind or next((k for k in TEST_SETS if path.stem.startswith(k)), None)
        if kind is None:
            raise SystemExit(f"{path}: name it water*/organic* or pass --kind")
        header = read_header(path)
        model = load_model(path, device="cpu")
        for label, patterns in TEST_SETS[kind]:
            test = load(patterns)
            if test is None:
                continue
            m = evaluate(model, test)
            pressure = f"{m['pressure_mean_error_kbar']:+.2f} / {m['pressure_mae_kbar']:.2f}" if "pressure_mae_kbar" in m \
                else "-"
            esp = f"{m['esp_charge_mae_e']:.4f}" if "esp_charge_mae_e" in m else "-"
            print(f"| `{path.stem}` ({header['architecture']['n_members']} members, "
                  f"{path.stat().st_size / 1024:.0f} KiB) | {label} | {m['frames']} / {m['atoms']} | "
                  f"{1000 * m['energy_mae_eV_per_atom']:.2f} | {m['force_mae_eV_A']:.3f} | {m['force_rmse_eV_A']:.3f} | "
                  f"{m['charge_mae_e']:.4f} | {pressure} | {esp} |", flush=True)


if __name__ == "__main__":
    main()
