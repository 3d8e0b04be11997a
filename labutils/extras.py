"""Optional dependencies: import one, or say which feature needs it and how to install it."""
from __future__ import annotations

import importlib

__all__ = ["require"]


def require(module: str, needed_for: str, *, pip: str | None = None):
    """``importlib.import_module(module)``, or an ImportError naming ``needed_for`` and the fix.

    Args:
        module: the importable name (e.g. ``"lifelines"``, ``"distributed"``).
        needed_for: what needs it, e.g. ``"labutils.robustness.survival's AFT fits"``.
        pip: the requirement to install when it differs from ``module`` (e.g. ``"dask[distributed]"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{needed_for} needs the '{module}' package; it is part of labutils[course]: run "
                          f"`make setup` (or `pip install '{pip or module}'`).") from err
