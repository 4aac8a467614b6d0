"""The package's version, in one place: ``codellama_course.__version__`` and pyproject's dynamic version read it."""

__version__ = "0.2.0"
