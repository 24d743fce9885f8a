"""Every public name has a numpydoc docstring: functions and classes list every parameter under "Parameters"
(result classes may document their fields under "Attributes" instead).  Public names are those in the
``__all__`` of qmml and its subpackages, the names the API reference documents."""

import importlib
import inspect
import re

import pytest

PACKAGES = ["qmml", "qmml.analysis", "qmml.ml", "qmml.md", "qmml.qm", "qmml.partition", "qmml.environments",
            "qmml.sampling", "qmml.interfaces", "qmml.periodic", "qmml.coupling"]


def undocumented(obj) -> list:
    """What the docstring of ``obj`` lacks: ["docstring"] without one, else the parameters it does not list."""
    doc = inspect.getdoc(obj) or ""
    if not doc.strip():
        return ["docstring"]
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    names = [p.name for p in signature.parameters.values()
             if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self" and not p.name.startswith("_")]
    if not names or (inspect.isclass(obj) and "Attributes\n---" in doc and "Parameters\n---" not in doc):
        return []
    section = re.search(r"Parameters\n-+\n(.*?)(?:\n\n[A-Z][A-Za-z ]+\n-+\n|\Z)", doc, re.S)
    listed = set()
    for line in section.group(1).splitlines() if section else []:
        if line and not line.startswith(" "):
            listed |= {part.strip().lstrip("*") for part in line.split(" : ")[0].split(",")}
    return [n for n in names if n not in listed]


def public_names():
    seen, out = set(), []
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if not inspect.ismodule(obj) and (inspect.isclass(obj) or callable(obj)) and id(obj) not in seen:
                seen.add(id(obj))
                out.append((f"{package}.{name}", obj))
    return out


def test_every_public_function_and_class_has_a_numpydoc_docstring():
    names = public_names()
    assert len(names) > 120
    problems = {name: lacks for name, obj in names if (lacks := undocumented(obj))}
    assert not problems, "docstrings to complete (numpydoc, with units): " + "; ".join(
        f"{name} lacks {', '.join(lacks)}" for name, lacks in problems.items())


def test_the_check_catches_a_missing_docstring_and_a_missing_parameter():
    def bare(x, y):
        return x + y

    def partial(x, y):
        """Sum.

        Parameters
        ----------
        x : float
            Å.
        """

    def complete(x, y, *, z=1):
        """Sum.

        Parameters
        ----------
        x, y : float
            Å.
        z : int
        """

    assert undocumented(bare) == ["docstring"]
    assert undocumented(partial) == ["y"]
    assert undocumented(complete) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_public_names_exist(package):
    module = importlib.import_module(package)
    assert all(hasattr(module, name) for name in module.__all__)
