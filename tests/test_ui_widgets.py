"""The notebooks' widgets in a real browser: JupyterLab and a headless system Chromium, driven by Playwright.

For each notebook with an explorer, the test opens a temporary copy of it in JupyterLab, runs all cells
under the smoke profile, then moves every slider of the widget by keyboard (its noUiSlider handle) and
picks another option of every dropdown, and checks that the widget's Output area redraws (its summary
line and/or its image change, without an error).  What was moved and what changed is printed
(``pytest -s`` or ``-rA``) and written, with a screenshot of the widget before and after each move, to
``runs/ui/`` (or ``$LAB_UI_ARTEFACTS``).

Needs the ``playwright`` package (``labutils[browser]``) and Chromium from the OS packages (as root:
``apt-get install chromium chromium-driver``; ``$LAB_CHROMIUM`` names another binary); without them
the test is skipped with that message.  Run it alone with ``pytest -m ui tests/test_ui_widgets.py -rA``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import ui_support as ui

pytestmark = pytest.mark.ui

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ["02_fgsm_and_targeted_attacks", "04_adversarial_training", "05_entropy_monitoring",
             "06_hybrid_cnn_and_selective_classification", "07_randomized_smoothing"]
RUN_ALL_TIMEOUT = 900   # s per notebook under the smoke profile (about 2 min each with cached models on 2 cores)
REDRAW_TIMEOUT = 180    # s for the kernel to redraw a widget after a move
WIDGET_ROOT = ".jp-OutputArea-output:has(.widget-output)"  # the cell output holding an explorer
CONTROLS = ".widget-slider, .widget-dropdown"               # in the order they appear
DEAD = ("dead", "unknown", "no kernel", "autorestarting", "restarting")
# the controls each explorer has (label shown beside each): all must be found, and each is moved once
EXPECTED_CONTROLS = {
    "02_fgsm_and_targeted_attacks": ["eps (x/255)", "attack", "target"],
    "04_adversarial_training": ["eps (x/255)", "attack"],
    "05_entropy_monitoring": ["threshold (bits)"],
    "06_hybrid_cnn_and_selective_classification": ["threshold (nats)"],
    "07_randomized_smoothing": ["sigma ([0, 1] scale)", "image"],
}
DISABLED = "c => { const s = c.querySelector('select'); return s ? s.disabled : !!c.querySelector('[disabled]'); }"


def _artefacts() -> Path:
    folder = Path(os.environ.get("LAB_UI_ARTEFACTS") or ROOT / "runs" / "ui")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the UI test needs Playwright: pip install playwright==1.65.2 (labutils[browser], "
                    "installed by make setup)")
    chromium = ui.find_chromium()
    if chromium is None:
        pytest.skip(f"no system Chromium (chromium or chromium-browser on the PATH, or $LAB_CHROMIUM): "
                    f"as root, {ui.CHROMIUM_PACKAGES}")
    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            yield chrome
        finally:
            chrome.close()


@pytest.fixture(scope="module")
def lab(browser, tmp_path_factory):
    """JupyterLab on a temporary copy of notebooks/, smoke profile, metrics in a temporary LAB_RUN_DIR."""
    work = tmp_path_factory.mktemp("ui-lab")
    copy = work / "notebooks"
    copy.mkdir()
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy2(notebook, copy)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernels' inline backend draws figures
    env.update(LAB_PROFILE="smoke", LAB_RUN_DIR=str(work / "run"), JUPYTER_RUNTIME_DIR=str(work / "runtime"))
    server = ui.start_lab(copy, env, work)
    try:
        yield server
    finally:
        server.stop()


def _run_all(page, lab, name: str) -> float:
    """Open ``name``, run all its cells and wait until every code cell ran and the kernel is idle; the seconds taken."""
    page.goto(lab.notebook_url(name, workspace=f"ui-{Path(name).stem[:2]}"))
    ready = ui.poll(page, ui.NOTEBOOK_READY, name, timeout=180, until=bool,
                    what=f"{name} to open with an idle kernel")
    if isinstance(ready, dict):
        pytest.fail(f"{name}: JupyterLab showed a dialog instead of the notebook: {ready['dialog']}", pytrace=False)
    start = time.monotonic()
    page.evaluate(ui.RUN_ALL)
    state = ui.poll(page, ui.RUN_STATE, timeout=RUN_ALL_TIMEOUT, interval=2, what=f"run-all of {name}",
                    until=lambda s: s["errors"] or s["status"] in DEAD or (
                        s["done"] == s["total"] and s["status"] == "idle" and s["busy_prompts"] == 0))
    if state["status"] in DEAD:
        pytest.fail(f"{name}: the kernel is {state['status']} after {state['done']} of {state['total']} cells "
                    f"(out of memory?)", pytrace=False)
    if state["errors"]:
        pytest.fail(f"{name}: a cell raised:\n" + "\n\n".join(
            f"cell {e['cell']}:\n{ui.strip_ansi(e['text'])}" for e in state["errors"]), pytrace=False)
    return time.monotonic() - start


def _output(root) -> dict:
    return root.evaluate(ui.OUTPUT_STATE)


def _digest(state: dict) -> list[str]:
    return [hashlib.sha256(src.encode()).hexdigest()[:12] for src in state["images"]]


def _wait_for_redraw(page, root, before: dict, what: str) -> tuple[dict, float]:
    """Wait until the Output area differs from ``before`` and holds still (two reads alike); fail on a stderr."""
    start, deadline, last = time.monotonic(), time.monotonic() + REDRAW_TIMEOUT, None
    while True:
        now = _output(root)
        if now != before and (now["images"] or now["stderr"]) and now == last:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: the widget's output did not change within {REDRAW_TIMEOUT} s; "
                                 f"it still shows {now['text']!r}")
        last = now
        page.wait_for_timeout(500)
    assert not now["stderr"], f"{what}: the widget redrew an error: {now['stderr']}"
    assert now["images"], f"{what}: the widget redrew without its figure: {now['text']!r}"  # every explorer draws one
    return now, time.monotonic() - start


def _move(control, kind: str) -> tuple[str, str, str]:
    """Move one control: ``(how, value before, value after)``, both values read from the page."""
    if kind == "slider":
        handle, readout = control.locator(".noUi-handle"), control.locator(".widget-readout")
        before = readout.inner_text().strip()
        handle.focus()
        for key in ("ArrowRight", "ArrowLeft"):  # left only where the handle already sits at its maximum
            handle.press(key)
            for _ in range(20):  # the readout follows the handle at once
                if readout.inner_text().strip() != before:
                    return f"key {key} on the slider handle", before, readout.inner_text().strip()
                control.page.wait_for_timeout(250)
        return "keys ArrowRight and ArrowLeft on the slider handle", before, readout.inner_text().strip()
    select = control.locator("select")
    shown = "s => s.options[s.selectedIndex].text.split(/\\s+/).join(' ').trim()"  # ipywidgets writes \xa0
    before, count = select.evaluate(shown), select.evaluate("s => s.options.length")
    select.select_option(index=(select.evaluate("s => s.selectedIndex") + 1) % count)
    return "select_option", before, select.evaluate(shown)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "control"


def _exercise_widget(page, root, stem: str, folder: Path) -> list[dict]:
    """Move every slider and dropdown of one explorer in turn; a record per control."""
    controls = [(c, "slider" if "widget-slider" in (c.get_attribute("class") or "") else "dropdown")
                for c in root.locator(CONTROLS).all()]
    assert controls, f"{stem}: the explorer shows no slider and no dropdown"
    records, waiting = [], list(range(len(controls)))
    while waiting:
        ready = [i for i in waiting if not controls[i][0].evaluate(DISABLED)]
        # a disabled control (02's target class) is tried again once the others have moved
        assert ready, (f"{stem}: controls {[controls[i][0].inner_text() for i in waiting]} stay disabled after "
                       f"every other control moved")
        i = ready[0]
        waiting.remove(i)
        control, kind = controls[i]
        label = control.locator(".widget-label").first.inner_text().strip()
        shot = folder / f"{stem}_{len(records) + 1:02d}_{_slug(label)}"
        before = _output(root)
        root.screenshot(path=f"{shot}_before.png")
        how, value_before, value_after = _move(control, kind)
        assert value_after != value_before, f"{stem}: moving {kind} {label!r} ({how}) left its value at {value_before}"
        after, seconds = _wait_for_redraw(page, root, before, f"{stem}, {kind} {label!r} {value_before} -> {value_after}")
        root.screenshot(path=f"{shot}_after.png")
        records.append({"control": kind, "label": label, "how": how, "before": value_before, "after": value_after,
                        "redraw_s": round(seconds, 1), "text_before": before["text"], "text_after": after["text"],
                        "text_changed": after["text"] != before["text"],
                        "images_before": _digest(before), "images_after": _digest(after),
                        "image_changed": _digest(after) != _digest(before),
                        "screenshots": [f"{shot.name}_before.png", f"{shot.name}_after.png"]})
    return records


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_widgets_redraw_in_jupyterlab(stem, browser, lab):
    folder, name = _artefacts(), f"{stem}.ipynb"
    assert (lab.root / name).exists(), f"{name} is not in notebooks/"
    start = time.monotonic()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        run_all_s = _run_all(page, lab, name)
        roots = page.locator(WIDGET_ROOT)
        ui.poll(page, "(sel) => [...document.querySelectorAll(sel)].filter(r => r.querySelector("
                      "'.widget-output img')).length", WIDGET_ROOT, timeout=120, until=bool,
                what=f"an explorer with a drawn figure in {name}")
        assert roots.count() == 1, f"{name}: {roots.count()} explorers on the page, expected one"
        records = _exercise_widget(page, roots.first, stem, folder)
        assert sorted(r["label"] for r in records) == sorted(EXPECTED_CONTROLS[stem]), \
            f"{name}: moved {[r['label'] for r in records]}, expected {EXPECTED_CONTROLS[stem]}"
    except BaseException:
        try:
            page.screenshot(path=str(folder / f"{stem}_failure.png"), full_page=True)
        except Exception as exc:  # the page itself broke: keep the original failure
            print(f"no failure screenshot: {exc}")
        shutil.copy2(lab.log, folder / f"{stem}_jupyterlab.log")  # the server's side of the failure
        raise
    finally:
        page.close()
        try:
            lab.shutdown_kernels()
        except OSError as exc:  # a dead server must not hide the test's own failure
            print(f"could not shut the kernels down: {exc}")
    report = {"notebook": name, "run_all_s": round(run_all_s, 1), "total_s": round(time.monotonic() - start, 1),
              "controls": records}
    (folder / f"{stem}.json").write_text(json.dumps(report, indent=1))
    print(f"\n{name}: run all {report['run_all_s']} s, total {report['total_s']} s")
    for r in records:
        print(f"  {r['control']} {r['label']!r}: {r['before']} -> {r['after']} ({r['how']}); redrawn in "
              f"{r['redraw_s']} s; image {'changed' if r['image_changed'] else 'unchanged'}; text "
              f"{'changed' if r['text_changed'] else 'unchanged'}:\n    before: {r['text_before']}\n"
              f"    after:  {r['text_after']}")
