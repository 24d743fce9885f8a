from .qm import PySCFEngine
