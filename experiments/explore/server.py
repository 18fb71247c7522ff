"""Serving the explorer: a Bokeh server on 127.0.0.1 whose every script and style comes from
the installed Bokeh package, which prints one line per problem (never a traceback) and stops
cleanly on Ctrl-C."""
from __future__ import annotations

import logging
import signal
import socket
import sys
import webbrowser
import weakref

from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.server.server import Server
from bokeh.settings import settings

from experiments.explore.app import Explorer
from experiments.spec import SpecError

ADDRESS = "127.0.0.1"  # this machine only: the page runs simulations for whoever opens it
#: seconds a running simulation gets to notice it was cancelled when the server stops
STOP_WAIT = 5.0


class _OneLine(logging.Formatter):
    """Log records as one line each: the message's first line, no traceback."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().strip().splitlines()
        return f"dlion-sim explore: {record.levelname.lower()}: {message[0] if message else ''}"


def _quiet_logs() -> None:
    """Bokeh's, Tornado's and asyncio's warnings and errors as one line each on stderr; their
    traces and the access log (a line per request) are not printed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    for name in ("bokeh", "tornado", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.WARNING)
        logger.propagate = False
    logging.getLogger("tornado.access").setLevel(logging.ERROR)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((ADDRESS, 0))
        return probe.getsockname()[1]


def serve(port: int = 8765, open_browser: bool = True) -> int:
    """Serve the explorer at http://127.0.0.1:PORT/ (port 0: any free one) until Ctrl-C or
    SIGTERM; returns the exit status. SpecError when the port cannot be had."""
    settings.resources.set_value("server")  # BokehJS from the installed package, not a CDN
    _quiet_logs()
    port = port or _free_port()
    runners = weakref.WeakSet()

    def page(doc) -> None:
        runners.add(Explorer(doc).runner)

    try:
        server = Server({"/": Application(FunctionHandler(page))}, address=ADDRESS, port=port,
                        allow_websocket_origin=[f"{ADDRESS}:{port}", f"localhost:{port}"])
    except OSError as err:
        raise SpecError(f"--port {port}: cannot listen on {ADDRESS}:{port} "
                        f"({err.strerror or err}); choose another port") from None
    url = f"http://{ADDRESS}:{port}/"
    loop = server.io_loop.asyncio_loop
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, server.io_loop.stop)
    server.start()
    print(f"dlion-sim explore: serving {url} (Ctrl-C stops it)", flush=True)
    if open_browser:
        server.io_loop.add_callback(webbrowser.open, url)
    try:
        server.io_loop.start()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        for runner in list(runners):
            runner.close(wait=STOP_WAIT)
        server.stop()
    print("dlion-sim explore: stopped", flush=True)
    return 0
