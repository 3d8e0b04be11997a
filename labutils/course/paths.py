"""Where the course's files are: the repository root and its numbered notebooks."""
from __future__ import annotations

from pathlib import Path

__all__ = ["REPO_ROOT", "NOTEBOOK_DIR", "notebook_paths"]

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def notebook_paths(selection=None, folder: str | Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` of ``folder``, in order.

    ``selection``: names or prefixes (``["02", "07_randomized"]``) keeps those whose name starts with an entry;
    an entry that matches no notebook is a ValueError naming it and the notebooks there.
    """
    found = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if selection:
        unknown = [s for s in selection if not any(p.name.startswith(s) for p in found)]
        if unknown:
            raise ValueError(f"No notebook matches {unknown} in {folder}; available: {[p.name for p in found]}.")
        found = [p for p in found if any(p.name.startswith(s) for s in selection)]
    return found
