"""Saving and loading fitted estimators (arrays and JSON; loading executes nothing)."""

from .npz import load, save

__all__ = ["load", "save"]
