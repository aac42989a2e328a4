"""The package version: its one definition (pyproject.toml reads it; the SDK sends it as its User-Agent)."""

__version__ = "0.1.0"
