"""Where the course is published, and the Colab and Binder links made from it.

The repository URL is ``Repository`` under ``[project.urls]`` in ``pyproject.toml`` (the instructor sets it
when publishing the course): read from the checkout's ``pyproject.toml`` when there is one, else from the
installed package's metadata (``Project-URL``), so a wheel install knows it too.
"""
from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path
from urllib.parse import quote

from .paths import REPO_ROOT

__all__ = ["repository_url", "github_repository", "colab_url", "colab_badge", "binder_url", "BRANCH"]

BRANCH = "main"  # the branch Colab opens the notebooks from
_GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$")
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def _from_pyproject(path: Path) -> str | None:
    try:
        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    if project.get("name") != "labutils":
        return None
    return project.get("urls", {}).get("Repository")


def _from_metadata(package: str = "labutils") -> str | None:
    try:
        entries = metadata.metadata(package).get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    for entry in entries:  # "Repository, https://..."
        label, _, url = entry.partition(",")
        if label.strip().lower() == "repository" and url.strip():
            return url.strip()
    return None


def repository_url(pyproject: str | Path | None = None) -> str:
    """The course's repository URL: ``[project.urls] Repository`` of ``pyproject`` (default: this checkout's
    ``pyproject.toml``), else of the installed ``labutils`` package's metadata.  RuntimeError when neither
    names one."""
    url = _from_pyproject(Path(pyproject) if pyproject is not None else REPO_ROOT / "pyproject.toml")
    url = url or _from_metadata()
    if not url:
        raise RuntimeError("No repository URL: set Repository under [project.urls] in pyproject.toml.")
    return url


def github_repository(url: str | None = None) -> str:
    """``"owner/name"`` of a GitHub repository URL (default :func:`repository_url`); ValueError for another host."""
    url = url or repository_url()
    match = _GITHUB.match(url)
    if match is None:
        raise ValueError(f"{url!r} is not a GitHub repository URL (https://github.com/<owner>/<name>): Colab and "
                         "Binder links need one.")
    return f"{match.group(1)}/{match.group(2)}"


def colab_url(notebook: str, *, url: str | None = None, branch: str = BRANCH) -> str:
    """The "Open in Colab" link of ``notebook`` (a file name or stem under ``notebooks/``)."""
    name = notebook if notebook.endswith(".ipynb") else f"{notebook}.ipynb"
    return (f"https://colab.research.google.com/github/{github_repository(url)}/blob/{branch}/notebooks/"
            f"{quote(name)}")


def colab_badge(notebook: str, *, url: str | None = None) -> str:
    """Markdown of the "Open in Colab" badge linking to :func:`colab_url`."""
    return f"[![Open in Colab]({COLAB_BADGE})]({colab_url(notebook, url=url)})"


def binder_url(*, url: str | None = None, ref: str = "HEAD") -> str:
    """The Binder link that builds the repository (``binder/``) and opens JupyterLab."""
    return f"https://mybinder.org/v2/gh/{github_repository(url)}/{ref}?urlpath=lab"
