"""The shipped models' test-set errors at a base revision and in the working tree, side by side: speed work on
the environment model must leave every prediction unchanged.

    python benchmarks/test_set_errors.py --base 6ce3ff7          # appends to RESULTS.md
    python benchmarks/test_set_errors.py --base 6ce3ff7 --no-write

For every shipped model with a held-out test set (``data/datasets/<name>_test.npz``): the metrics of
`qmml.ml.evaluate` (energy, force and charge errors against the GFN2-xTB labels) in a fresh process at each
revision, with the working tree's model and data files for both, and their largest difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _revisions import append_results, run_child, short_revision, worktree  # noqa: E402

CHILD = """
import json, sys
from pathlib import Path
from qmml import load_model
from qmml.ml import Dataset, evaluate
data = Path(sys.argv[1])
out = {}
for name in sys.argv[2:]:
    model = load_model(str(data / "models" / f"{name}.pt"), device="cpu")
    out[name] = evaluate(model, Dataset.load(data / "datasets" / f"{name}_test.npz"))
print(json.dumps(out))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision before the change")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    names = sorted(p.name[:-len("_test.npz")] for p in (ROOT / "data" / "datasets").glob("*_test.npz")
                   if (ROOT / "data" / "models" / p.name.replace("_test.npz", ".pt")).exists())
    data = ROOT / "data"
    now = run_child(ROOT, CHILD, data, *names)
    with worktree(args.base) as tree:
        before = run_child(tree, CHILD, data, *names)
    base = short_revision(args.base)
    rows = [f"| model | metric | {base} | working tree | difference |", "| --- | --- | --- | --- | --- |"]
    largest = 0.0
    for name in names:
        for key in sorted(now[name]):
            a, b = before[name].get(key), now[name][key]
            if not isinstance(b, (int, float)) or a is None:
                continue
            largest = max(largest, abs(a - b))
            rows.append(f"| {name} | {key} | {a:.6g} | {b:.6g} | {abs(a - b):.1e} |")
    table = "\n".join(rows) + f"\n\nLargest difference: {largest:.1e}."
    print(table)
    if not args.no_write:
        append_results("Shipped models' test-set errors, before and after", "python benchmarks/test_set_errors.py "
                       f"--base {args.base}", f"metrics of qmml.ml.evaluate; {base} against the working tree.",
                       table)
    print(json.dumps({"largest_difference": largest}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
