"""The package version, in a leaf module so that the run directory and the CLI can record it
without importing the package facade (which would load the API)."""

__version__ = "0.1.0"
