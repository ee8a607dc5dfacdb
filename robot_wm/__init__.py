"""robot-wm: imagine before you act."""

__version__ = "0.1.0"
