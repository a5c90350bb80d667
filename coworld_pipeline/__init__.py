"""coworld-pipeline: a self-hostable league platform for Coworld game packages."""

__version__ = "0.1.0"
