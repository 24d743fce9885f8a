"""The test suite executes every notebook in tutorials/ (nbmake) with the fast settings.

Each notebook reads ``QMML_TUTORIAL_FAST``; the kernels nbmake starts inherit this process's environment.
Export ``QMML_TUTORIAL_FAST=0`` to run the full settings under pytest instead.
"""

import os

os.environ.setdefault("QMML_TUTORIAL_FAST", "1")
