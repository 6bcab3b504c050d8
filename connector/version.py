"""The package version, in a module of its own so that any module can read it without
importing `connector` (whose app factory imports the web modules: that was a cycle)."""
__version__ = "0.1.0"
