"""Driving the explorer for real: the server as a process of its own, Debian's headless
Chromium through Selenium with no connection of its own, and the page's elements found through
the shadow roots Bokeh renders into. Used by tests/test_explore_browser.py and
docs/explore_screenshot.py."""
from __future__ import annotations

import importlib.util
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANG = 120  # seconds after which something that should have happened counts as hung
INSTALL = ("apt-get install -y chromium chromium-driver, and pip install '.[test]' (selenium "
           "and the explore extra)")
#: no first-run page, no background connections (this machine has no internet), a fresh
#: profile every time (--user-data-dir is added per browser)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def missing() -> str | None:
    """Why the browser cannot be driven here (None: it can)."""
    absent = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    absent += [name for name in ("selenium", "bokeh") if importlib.util.find_spec(name) is None]
    return f"{', '.join(absent)} missing: {INSTALL}" if absent else None


def start_server(port: int = 0) -> tuple[subprocess.Popen, str]:
    """``dlion-sim explore --no-browser`` as a process; (the process, the URL it serves)."""
    proc = subprocess.Popen([sys.executable, "-m", "experiments.cli", "explore", "--port",
                             str(port), "--no-browser"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    ready, _, _ = select.select([proc.stdout], [], [], HANG)
    line = proc.stdout.readline() if ready else ""
    if "serving http://" not in line:
        proc.kill()
        raise AssertionError(f"the explorer did not start: {line!r} {proc.stderr.read()}")
    return proc, line.split("serving ")[1].split()[0]


def stop_server(proc: subprocess.Popen) -> tuple[int, str, str]:
    """Ctrl-C the server; (exit status, the rest of stdout, stderr)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=HANG)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the explorer did not stop on Ctrl-C") from None
    return proc.returncode, out, err


def chromium(profile: Path, size: tuple[int, int] = (1600, 1300)):
    """A headless Chromium (Debian's, with its chromedriver: Selenium downloads nothing) that
    records every request it makes."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


_WALK = """const selector = arguments[0], text = arguments[1], found = [];
(function walk(root) {
  root.querySelectorAll(selector).forEach(e => {
    if (!text || e.getRootNode().textContent.includes(text)) found.push(e); });
  root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) walk(e.shadowRoot); });
})(document);
return found;"""


def find(driver, selector: str, text: str = "") -> list:
    """Elements matching ``selector`` in the page and every shadow root inside it; with
    ``text``, only those whose shadow root (or document) contains that text."""
    return driver.execute_script(_WALK, selector, text)


def _read(driver, selector: str, script: str):
    """``script`` (JS with ``e``, one element) on every element matching ``selector``, all in
    one call: the page redraws between calls, and an element found in one may be gone in the
    next."""
    mapped = _WALK.replace("return found;", f"return found.map(e => {script});")
    return driver.execute_script(mapped, selector, "")


def status(driver) -> tuple[str, int, str]:
    """(state, generation, text) of the page's status line ('running', 'done', 'error')."""
    found = _read(driver, "span.status", "[e.dataset.state, e.dataset.generation, e.textContent]")
    if not found:
        return "", -1, ""
    state, generation, text = found[0]
    return state, int(generation), text


def settled(driver, after: int = 0) -> tuple[str, int, str]:
    """Wait until the status line answers a change newer than generation ``after``, and the
    page has not moved on within a short look again."""
    deadline = time.monotonic() + HANG
    while True:
        state, generation, text = status(driver)
        if state in ("done", "error") and generation > after:
            time.sleep(0.3)  # a change still on its way would start another generation
            if status(driver)[:2] == (state, generation):
                return state, generation, text
        assert time.monotonic() < deadline, f"the page did not settle: {text!r}"
        time.sleep(0.05)


def shown_times(driver) -> dict[str, tuple[float | None, str]]:
    """method key -> (time to target the row carries, its time cell's text)."""
    rows = _read(driver, "tr.answer", "[e.dataset.method, e.dataset.timeS, "
                                      "e.querySelector('td.time').textContent]")
    return {key: (None if exact == "none" else float(exact), cell) for key, exact, cell in rows}


def spec_text(driver) -> str:
    """The "copy as spec" TOML the page shows."""
    return next(t for t in _read(driver, "pre", "e.textContent") if "[objective]" in t)


def requests(driver) -> list[str]:
    """Every URL the browser asked for (pages, scripts, styles, images, websockets)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
        elif message["method"] == "Network.webSocketCreated":
            urls.append(message["params"]["url"])
    return urls
