"""Helpers of ``tests/test_ui_widgets.py``: a throw-away JupyterLab server, the system Chromium, and the
JavaScript that reads a notebook's state through ``window.jupyterapp`` and a widget's output from the DOM.

Nothing here imports Playwright, so the test module can skip cleanly when it is missing.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_PACKAGES = "apt-get install chromium chromium-driver"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def find_chromium() -> str | None:
    """``$LAB_CHROMIUM`` (must then be an executable), else ``chromium`` or ``chromium-browser`` on the PATH."""
    configured = os.environ.get("LAB_CHROMIUM", "").strip()
    if configured:
        path = shutil.which(configured)
        if path is None:
            raise FileNotFoundError(f"LAB_CHROMIUM={configured!r} is not an executable Chromium.")
        return path
    return shutil.which("chromium") or shutil.which("chromium-browser")


# requests to the local server never go through $http_proxy (urllib does not skip 127.0.0.1 by itself)
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    """A ``jupyter lab`` process serving ``root`` on ``url``, authenticated by ``token``."""

    process: subprocess.Popen
    url: str
    token: str
    root: Path
    log: Path

    def api(self, method: str, path: str, timeout: float = 30):
        request = urllib.request.Request(self.url + path, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with _LOCAL.open(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def notebook_url(self, name: str, workspace: str) -> str:
        """Opens ``name`` alone in a fresh workspace (no notebook of an earlier page is restored)."""
        return f"{self.url}/lab/workspaces/{workspace}/tree/{name}?token={self.token}"

    def shutdown_kernels(self) -> None:
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        """Shut the kernels down, stop the server (SIGTERM, then SIGKILL), and kill any child left over."""
        import psutil

        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        if self.process.poll() is None:
            try:
                self.shutdown_kernels()
            except OSError:
                pass
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


def start_lab(root: Path, env: dict, state_dir: Path, timeout: float = 180) -> LabServer:
    """Start JupyterLab on a free localhost port with a random token, its settings and workspaces in ``state_dir``.

    The notebook's windowing is off, so every cell (and widget) is in the DOM however long the notebook is,
    and the news prompt is answered, so no toast covers the widgets in the screenshots.
    """
    port, token = _free_port(), secrets.token_hex(24)
    settings = state_dir / "settings"
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    notices = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notices.parent.mkdir(parents=True, exist_ok=True)
    notices.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))  # no toast over the widgets
    (state_dir / "workspaces").mkdir(exist_ok=True)
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={settings}",
               f"--LabApp.workspaces_dir={state_dir / 'workspaces'}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root
    log = state_dir / "jupyterlab.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = LabServer(process, f"http://127.0.0.1:{port}", token, root, log)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}")
        try:
            server.api("GET", "/api/status", timeout=5)
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f} s:\n{server.log_tail()}")
            time.sleep(0.5)


def poll(page, script: str, arg=None, *, timeout: float, until, what: str, interval: float = 0.5):
    """Evaluate ``script`` in the page until ``until(result)`` holds; AssertionError naming ``what`` and the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = page.evaluate(script, arg)
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last state: {result}")
        page.wait_for_timeout(interval * 1000)


# --------------------------------------------------------------------------- JavaScript run in the page
# true once the notebook `path` is open, its kernel started and idle, and run-all is available; never waits (a
# kernel that fails to start must not hang the test): a dialog JupyterLab shows instead is returned as its text
NOTEBOOK_READY = """(path) => {
  const dialog = document.querySelector('.jp-Dialog');
  if (dialog) return {dialog: dialog.innerText};
  const app = window.jupyterapp;
  if (!app) return false;
  const panel = app.shell.currentWidget;
  if (!panel || !panel.context || panel.context.path !== path) return false;
  if (!panel.context.isReady || !panel.sessionContext.isReady) return false;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' && app.commands.isEnabled('notebook:run-all-cells');
}"""

RUN_ALL = "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); return true; }"

# code cells run so far, error outputs, the kernel's status and the prompts still showing [*]
RUN_STATE = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.model.cells;
  const state = {total: 0, done: 0, pending: [], errors: [], busy_prompts: 0};
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code' || !cell.sharedModel.getSource().trim()) continue;  // an empty cell never runs
    state.total++;
    if (cell.executionCount !== null) state.done++; else state.pending.push(i);
    for (let j = 0; j < cell.outputs.length; j++) {
      const out = cell.outputs.get(j).toJSON();
      if (out.output_type === 'error')
        state.errors.push({cell: i, text: `${out.ename}: ${out.evalue}\\n${(out.traceback || []).join('\\n')}`});
    }
  }
  state.pending = state.pending.slice(0, 5);
  for (const p of document.querySelectorAll('.jp-InputPrompt')) if (p.textContent.includes('[*]')) state.busy_prompts++;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  state.status = kernel ? kernel.status : 'no kernel';
  return state;
}"""

# what a widget's Output area shows: its text, its images' src, and any stderr (an explorer's drawing error)
OUTPUT_STATE = """(root) => {
  const out = root.querySelector('.widget-output');
  if (!out) return {text: '', images: [], stderr: []};
  return {text: out.innerText.trim(),
          images: [...out.querySelectorAll('img')].map(img => img.src),
          stderr: [...out.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')].map(e => e.innerText)};
}"""
