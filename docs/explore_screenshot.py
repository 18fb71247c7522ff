"""Redraw docs/figures/explore/explorer.png: the explorer's default view, as headless Chromium
shows it, taken from a running ``dlion-sim explore`` (needs chromium, chromium-driver and the
test extra, as its browser test does).

    python docs/explore_screenshot.py [-o FILE]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import browser  # noqa: E402

#: the browser window, px: wide enough for the controls beside three panels
WIDTH = 1590


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path,
                        default=ROOT / "docs" / "figures" / "explore" / "explorer.png")
    args = parser.parse_args()
    if browser.missing():
        sys.exit(f"explore_screenshot: {browser.missing()}")
    from selenium.webdriver.common.keys import Keys

    proc, url = browser.start_server()
    driver = browser.chromium(Path(tempfile.mkdtemp(prefix="explore-shot-")), (WIDTH, 1000))
    try:
        driver.get(url)
        state, generation, text = browser.settled(driver)
        if state != "done":
            sys.exit(f"explore_screenshot: the page did not draw its view: {text}")
        # there and back on the bandwidth, so the status line gives a warm redraw's time
        handle = browser.find(driver, ".noUi-handle", "NIC bandwidth (per worker, or per node)")[0]
        driver.execute_script("arguments[0].focus()", handle)
        for key in (Keys.ARROW_RIGHT, Keys.ARROW_LEFT):
            handle.send_keys(key)
            state, generation, text = browser.settled(driver, after=generation)
        height = driver.execute_script(
            "return Math.max(...[...document.querySelectorAll('*')].map("
            "e => e.getBoundingClientRect().bottom))")
        driver.set_window_size(WIDTH, int(height) + 140)  # the window's frame is not the page
        browser.settled(driver)
        driver.execute_script("document.documentElement.style.overflow = 'hidden'")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.output))
    finally:
        driver.quit()
        browser.stop_server(proc)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
