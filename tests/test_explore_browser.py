"""The explorer in a real browser: ``dlion-sim explore`` as a process, Debian's headless
Chromium driven by Selenium. The page renders with nothing from outside this machine, and
moving the bandwidth control changes the time-to-target numbers to what
``experiments.simulate`` gives for that spec. Skipped where Chromium or the extras are missing
(failing under DLION_SIM_STRICT=1)."""
import tomllib
from urllib.parse import urlsplit

import pytest

import browser
import experiments
from experiments.grid import expand

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing()))

#: schemes of what the browser shows itself (its own pages, inline images), never fetched
LOCAL_SCHEMES = {"chrome", "chrome-untrusted", "data", "about", "blob", "devtools"}


@pytest.fixture
def served():
    proc, url = browser.start_server()
    yield url
    code, out, err = browser.stop_server(proc)
    assert code == 0 and out.strip().endswith("dlion-sim explore: stopped"), (out, err)
    assert "Traceback" not in err, err


@pytest.fixture
def page(served, tmp_path):
    driver = browser.chromium(tmp_path / "profile")
    try:
        driver.get(served)
        yield driver, served
    finally:
        driver.quit()


def _expected(raw: dict) -> dict:
    """method key -> experiments.simulate's time to target, for every point of ``raw``."""
    from plots.style import method_key

    out = {}
    for point in expand(raw):
        summary = experiments.simulate(point).summary
        out[method_key(summary["spec"])] = summary["target"]["time_s"]
    return out


def test_moving_the_bandwidth_changes_the_times_to_what_simulate_gives(page):
    from plots.answer import seconds_text

    driver, url = page
    state, generation, text = browser.settled(driver)
    assert state == "done", text
    before_toml = browser.spec_text(driver)
    before = browser.shown_times(driver)
    raw = tomllib.loads(before_toml)
    assert raw["network"]["bandwidth"] == "1Gbps"
    assert {k: t for k, (t, _) in before.items()} == _expected(raw)

    handle = browser.find(driver, ".noUi-handle", "NIC bandwidth (per worker, or per node)")
    assert len(handle) == 1
    driver.execute_script("arguments[0].focus()", handle[0])
    from selenium.webdriver.common.keys import Keys

    for _ in range(3):  # 1 -> 2 -> 5 -> 10 Gb/s; each step cancels the view before it
        handle[0].send_keys(Keys.ARROW_RIGHT)
    state, _, text = browser.settled(driver, after=generation)
    assert state == "done", text
    raw["network"]["bandwidth"] = "10Gbps"
    assert tomllib.loads(browser.spec_text(driver)) == raw  # only the bandwidth moved
    after = browser.shown_times(driver)
    expected = _expected(raw)
    assert {k: t for k, (t, _) in after.items()} == expected
    assert all(cell == seconds_text(expected[k]) for k, (_, cell) in after.items())
    assert {k: t for k, (t, _) in after.items()} != {k: t for k, (t, _) in before.items()}

    served = urlsplit(url).netloc
    asked = browser.requests(driver)  # the log empties as it is read: read it once
    outside = [u for u in asked if urlsplit(u).scheme not in LOCAL_SCHEMES
               and urlsplit(u).netloc != served]
    assert outside == [], f"the page asked for things outside {served}: {outside}"
    assert any(u.startswith(f"http://{served}/static/js/bokeh") for u in asked)
    assert any(u.startswith(f"ws://{served}/ws") for u in asked)  # the live connection
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
