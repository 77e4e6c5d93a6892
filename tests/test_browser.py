"""The attention explorer in a real JupyterLab, driven by headless Chromium (Playwright).

Starts a JupyterLab server on 127.0.0.1 over a temporary copy of `tests/browser/`, opens
`explorer.ipynb`, runs all cells from the Run menu, waits for the widget, moves the row
slider with the keyboard and checks that the rendered picture changes (and, with
ipyevents installed, that a click on the picture picks another pixel). A screenshot is
saved to $SEGLIB_SCREENSHOT_DIR (or the test's tmp_path) as `explorer_jupyterlab.png`.

Needs Debian's `chromium` (`apt-get install chromium`; `.ci/run` tries it) and the
`playwright` Python package (which drives the browser; no browser download: the
system's /usr/bin/chromium is used). Skips when either is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path(shutil.which("chromium") or "chromium")  # Debian's package, on PATH
FIXTURES = Path(__file__).parent / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# JupyterLab settings for a quiet, offline page: no news or update checks (network)
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

pytestmark = pytest.mark.browser


def free_port() -> int:
    """A TCP port that nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it dies or hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    pytest.fail(f"JupyterLab did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def lab_server(tmp_path: Path):
    """A JupyterLab server over a copy of tests/browser/; yields (base URL, token)."""
    notebooks = tmp_path / "notebooks"
    shutil.copytree(FIXTURES, notebooks)
    settings = tmp_path / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), os.urandom(16).hex()
    jupyter = Path(sys.executable).parent / "jupyter"  # the venv's, beside this python
    command = [
        str(jupyter), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.token={token}", "--allow-root", f"--notebook-dir={notebooks}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
    ]
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),  # no user config
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    log = tmp_path / "jupyter.log"
    with log.open("w") as out:
        # own session: the server and its kernel can be stopped together at the end
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=notebooks, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(f"{base}/api/status?token={token}", proc, log, timeout=40)
        yield base, token
    finally:
        try:  # a clean shutdown also stops the kernel
            request = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(request, timeout=5).close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def screenshot_dir(tmp_path: Path) -> Path:
    """Where the screenshot goes: $SEGLIB_SCREENSHOT_DIR when set, else tmp_path."""
    folder = Path(os.environ.get("SEGLIB_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def sync_api():
    """Playwright's sync API; skips (before any server starts) when a piece is missing."""
    if not CHROMIUM.is_file():
        pytest.skip("chromium not found on PATH: apt-get install chromium (Debian's package)")
    pytest.importorskip("ipywidgets", reason="ipywidgets not installed (seglib[lab])")
    return pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed: pip install playwright"
    )


def test_attention_explorer_in_jupyterlab(sync_api, lab_server, tmp_path):
    base, token = lab_server
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1150},
        )
        console: list[str] = []
        page = context.pages[0] if context.pages else context.new_page()
        page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
        try:
            # generous: a CI machine busy with other jobs redraws slowly (a passing run
            # takes about 20 s in all, so only a failure waits this long)
            page.set_default_timeout(90_000)
            page.goto(f"{base}/lab/tree/explorer.ipynb?token={token}")
            # the notebook is open and its kernel idle
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
            run_all_cells(page)
            picture = page.locator(".seglib-attention-explorer-image")
            wait_for_widget_or_error(page, timeout=180)  # a cold kernel imports torch
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0", arg=picture.element_handle()
            )
            readouts = page.locator(".seglib-attention-explorer .widget-readout")
            assert readouts.all_inner_texts()[:2] == ["5", "8"]
            before_src = picture.get_attribute("src")
            before = picture.screenshot()

            # move the row slider one step down with the keyboard
            handle = page.locator(".seglib-attention-explorer .widget-slider .noUi-handle").first
            handle.focus()
            page.keyboard.press("ArrowRight")
            page.wait_for_function(
                "([img, src]) => img.getAttribute('src') !== src && img.complete",
                arg=[picture.element_handle(), before_src],
            )
            assert readouts.all_inner_texts()[:2] == ["6", "8"]
            assert picture.screenshot() != before  # the maps were redrawn for (6, 8)

            if importlib.util.find_spec("ipyevents"):  # clicks too (else sliders only)
                # a click on the photograph (top-left panel) picks the pixel under it
                box = picture.bounding_box()
                src = picture.get_attribute("src")
                picture.click(position={"x": 0.1 * box["width"], "y": 0.15 * box["height"]})
                page.wait_for_function(
                    "([img, src]) => img.getAttribute('src') !== src && img.complete",
                    arg=[picture.element_handle(), src],
                )
                row, col = (int(t) for t in readouts.all_inner_texts()[:2])
                assert row < 6 and col < 8, (row, col)

            picture.scroll_into_view_if_needed()
            shot = screenshot_dir(tmp_path) / "explorer_jupyterlab.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
        except Exception:
            report_failure(page, console, tmp_path)
            raise
        finally:
            context.close()


def run_all_cells(page, attempts: int = 3) -> None:
    """Run > Run All Cells, as a learner would, until the first code cell is queued.

    On a loaded machine the notebook can open (kernel idle) before JupyterLab has made it
    the current widget; the menu's command is then disabled and a click does nothing
    (seen in fresh clones). So click into the cell first, wait until the menu item is
    enabled, and check that the cell's prompt turns to [*] or [1] before going on.
    """
    prompt = page.locator(".jp-CodeCell .jp-InputPrompt").first
    item = page.locator(".lm-Menu-item", has_text="Run All Cells").first
    for attempt in range(1, attempts + 1):
        prompt.click()  # make the notebook current
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        item.wait_for()
        if "lm-mod-disabled" in (item.get_attribute("class") or ""):
            print(f"Run All Cells: disabled at attempt {attempt}, retrying")
            page.keyboard.press("Escape")  # not ready yet: close the menu and try again
            page.wait_for_timeout(2_000 * attempt)
            continue
        item.click()
        try:
            page.wait_for_function(
                "el => /\\[(\\*|\\d+)\\]/.test(el.textContent)",
                arg=prompt.element_handle(),
                timeout=15_000,
            )
            return
        except Exception:  # the click was lost: try once more
            print(f"Run All Cells: attempt {attempt} did not start the cell, retrying")
            page.wait_for_timeout(1_000)
    pytest.fail(f"Run All Cells did not start the cell in {attempts} attempts")


def wait_for_widget_or_error(page, timeout: float) -> None:
    """Wait for the explorer's picture; fail at once with the traceback if the cell errs."""
    page.wait_for_function(
        """() => document.querySelector('.seglib-attention-explorer-image')
                 || document.querySelector('.jp-OutputArea-output[data-mime-type*="error"]')""",
        timeout=timeout * 1000,
    )
    error = page.locator('.jp-OutputArea-output[data-mime-type*="error"]')
    if error.count():
        pytest.fail("the explorer cell raised:\n" + error.first.inner_text()[-3000:])
    page.locator(".seglib-attention-explorer-image").wait_for(state="visible")


def report_failure(page, console: list[str], tmp_path: Path) -> None:
    """What a failed run leaves behind: a page screenshot, the console and the lab log."""
    folder = screenshot_dir(tmp_path)
    try:
        page.screenshot(path=str(folder / "explorer_jupyterlab_failure.png"), full_page=True)
    except Exception as error:  # the page itself may be gone
        console.append(f"(no failure screenshot: {error})")
    log = tmp_path / "jupyter.log"
    print(f"failure screenshot: {folder / 'explorer_jupyterlab_failure.png'}")
    print("browser console (last 40):", *console[-40:], sep="\n  ")
    print("JupyterLab log (tail):", log.read_text()[-4000:] if log.is_file() else "-", sep="\n")
