"""Sphinx configuration of the qmml documentation site.

Build: ``python -m sphinx -W -b html docs docs/_build/html`` (``pip install -e ".[docs]"``).  The API reference
and the job-file reference are generated at every build from ``__all__`` and the pydantic models
(``docs/_ext/qmml_reference.py``), and the tutorials are executed in their fast mode, so none of them can drift.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
os.environ.setdefault("QMML_TUTORIAL_FAST", "1")  # the notebooks' fast settings: minutes, not hours
os.environ.setdefault("OMP_NUM_THREADS", "1")

import qmml  # noqa: E402

project = "qmml"
author = "the qmml developers"
copyright = "2026, the qmml developers"
release = version = qmml.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.mathjax", "sphinx.ext.viewcode", "numpydoc", "myst_nb",
              "qmml_reference"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "scripts", "examples", "**.ipynb_checkpoints", "tutorials/runs", "tutorials/README.md"]
# py3Dmol views need the network and a browser: the site shows the notebooks without them
suppress_warnings = ["myst.header", "myst.xref_missing", "misc.highlighting_failure", "mystnb.unknown_mime_type"]

autodoc_typehints = "none"  # the numpydoc sections carry types and units
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "cache"
nb_execution_timeout = 1800
nb_execution_raise_on_error = True
nb_execution_cache_path = str(HERE / "_build" / ".jupyter_cache")

html_theme = "pydata_sphinx_theme"
html_title = f"qmml {release}"
html_theme_options = {"navigation_depth": 2, "show_toc_level": 2}
