"""The documentation's generated pages (docs/_ext/qmml_reference.py): the job-file reference lists every key of the
pydantic models, a new key included without a documentation edit, and the API pages document every public name."""

import importlib
import inspect
import sys
from pathlib import Path

from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import qmml_reference  # noqa: E402


def keys(model, prefix=""):
    out = []
    for name, field in model.model_fields.items():
        out.append(prefix + name)
        inner = [a for a in (getattr(field.annotation, "__args__", None) or (field.annotation,))
                 if isinstance(a, type) and issubclass(a, BaseModel)]
        if inner:
            out += keys(inner[0], prefix + name + ".")
    return out


def test_job_file_reference_lists_every_key(tmp_path):
    from qmml.config import JobConfig, TrainConfig

    page = tmp_path / "config_reference.md"
    qmml_reference.config_page(page)
    text = page.read_text()
    for key in keys(JobConfig) + keys(TrainConfig):
        assert f"| `{key}` |" in text, key
    assert "| `elastic.strain` | float | 0.005 | > 0, ≤ 0.05 |" in text  # type, default and bounds from the model


def test_a_new_key_appears_without_a_documentation_edit():
    class Section(BaseModel):
        """A section someone adds later."""

        friction_per_ps: float = Field(2.0, gt=0, description="a new setting, 1/ps")

    rows = "\n".join(qmml_reference._model_tables(Section, "new.", set()))
    assert "| `new.friction_per_ps` | float | 2.0 | > 0 | a new setting, 1/ps |" in rows


def test_api_pages_document_every_public_name_once(tmp_path):
    qmml_reference.api_pages(tmp_path)
    pages = {p.stem: p.read_text() for p in tmp_path.glob("*.rst")}
    documented = "\n".join(pages.values())
    for package in qmml_reference.PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            if not inspect.ismodule(getattr(module, name)):
                assert f"{package}.{name}" in documented or f".. rubric:: {name}" in pages[package.replace('.', '_')]
    directives = [line for line in documented.splitlines() if line.startswith((".. autoclass::", ".. autofunction::"))]
    assert len(directives) == len(set(directives)) > 120
