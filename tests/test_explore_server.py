"""``dlion-sim explore`` as a command: without the extra it names the install command, a bad or
busy port is one line, and the real server serves only local scripts and stops on Ctrl-C
without a traceback while a view is being computed."""
import importlib.util
import re
import socket
import subprocess
import sys
import urllib.request

import pytest

import browser
from experiments.cli import main


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("dlion-sim: error:") and "\n" not in err, err
    return err


def test_without_the_extra_it_says_which_command_installs_it(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bokeh" else real(name, *a))
    assert main(["explore", "--no-browser"]) == 2
    assert "pip install '.[explore]'" in _one_line_error(capsys)


def test_a_port_out_of_range_is_refused(capsys):
    assert main(["explore", "--port", "70000", "--no-browser"]) == 2
    assert "--port 70000" in _one_line_error(capsys)


def test_a_busy_port_is_one_line(tmp_path):
    pytest.importorskip("bokeh", reason="needs the explore extra: pip install '.[explore]'")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "experiments.cli", "explore", "--port",
                               str(port), "--no-browser"], cwd=browser.ROOT, capture_output=True,
                              text=True, timeout=browser.HANG)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"dlion-sim: error: --port {port}: cannot listen on "
                                   f"127.0.0.1:{port} (Address already in use); choose another "
                                   "port")


def test_the_server_serves_local_scripts_and_stops_on_ctrl_c():
    pytest.importorskip("bokeh", reason="needs the explore extra: pip install '.[explore]'")
    proc, url = browser.start_server()
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=browser.HANG) as response:
            page = response.read().decode()  # opening the page starts its first view
        sources = re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]+)"', page)
        assert sources and all(s.startswith("/static/") for s in sources), sources
    finally:
        code, out, err = browser.stop_server(proc)
    assert code == 0, err
    assert out.strip() == "dlion-sim explore: stopped"
    assert err == "", err


def test_a_logged_error_is_one_line_without_its_traceback():
    pytest.importorskip("bokeh", reason="needs the explore extra: pip install '.[explore]'")
    import logging

    from experiments.explore.server import _OneLine

    try:
        raise ValueError("deep inside a callback")
    except ValueError:
        record = logging.LogRecord("bokeh.server", logging.ERROR, __file__, 1,
                                   "error handling message\nsecond line", None, sys.exc_info())
    assert _OneLine().format(record) == "dlion-sim explore: error: error handling message"
