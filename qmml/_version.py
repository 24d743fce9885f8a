"""The package version, in a module of its own so that submodules that record it in the files they write
(model files, umbrella windows) import it without importing the package itself."""

__version__ = "0.1.0"
