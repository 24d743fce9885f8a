"""Shared by the benchmarks that time two revisions side by side: a temporary git worktree of the base
revision, and a child script run in a fresh process inside a given tree (its qmml on PYTHONPATH)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def short_revision(revision: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", revision], capture_output=True, text=True, cwd=ROOT,
                          check=True).stdout.strip()


@contextlib.contextmanager
def worktree(revision: str):
    """A detached checkout of ``revision`` in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base), revision], cwd=ROOT, check=True)
        try:
            yield base
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)


def run_child(tree: Path, code: str, *args) -> dict:
    """Run ``code`` with ``args`` in a fresh process inside ``tree``; its last output line is JSON."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env,
                         cwd=tree, check=False)
    if out.returncode != 0:
        sys.exit(f"the run in {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def append_results(title: str, command: str, note: str, table: str) -> None:
    """Append a section to benchmarks/RESULTS.md with the date, the command and the machine."""
    import datetime
    import platform

    threads = os.environ.get("OMP_NUM_THREADS")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, " + \
              (f"OMP_NUM_THREADS={threads}" if threads else "OMP_NUM_THREADS unset (OpenMP uses every core)")
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
        fh.write(f"\n## {title} ({datetime.date.today()})\n\n`{command}`; {machine}; {note}\n\n{table}\n")
