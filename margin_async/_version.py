"""The package version, in one place: pyproject.toml reads it from here (hatch's
``[tool.hatch.version]``), and ``margin_async.__version__`` is this value."""

__version__ = "0.1.0"
"""The version of margin-async (PEP 440); the installed distribution reports the same,
``importlib.metadata.version("margin-async")``."""
