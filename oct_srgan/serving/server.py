"""Running the app: a listening socket, uvicorn until Ctrl+C, or a background thread for tests."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette

from ..errors import OctSrganError


def listen(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one); one-line OctSrganError if it cannot bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OctSrganError(f"{host}:{port}: cannot listen there ({exc.strerror or exc})") from None
    sock.set_inheritable(True)
    return sock


def address(sock: socket.socket) -> str:
    """The page's URL for a socket from :func:`listen`."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(app: Starlette, log_level: str) -> Any:
    import uvicorn

    from .limits import MAX_CONNECTIONS, guarded_protocol

    return uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level=log_level, access_log=False,
                                         http=guarded_protocol(), limit_concurrency=MAX_CONNECTIONS,
                                         timeout_keep_alive=5))


def run(app: Starlette, sock: socket.socket, log_level: str = "warning") -> None:
    """Serve ``app`` on ``sock`` until Ctrl+C or SIGTERM; shutdown removes the upload folder.

    uvicorn re-raises the signal it handled once it has shut down: Ctrl+C is the normal way to stop
    (exit 0), SIGTERM ends the process with the shell's code for it, 143, rather than dying of it.
    """
    def terminated(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            _server(app, log_level).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def background(app: Starlette, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` from a thread (tests, notebooks); yields the base URL and stops the server after."""
    sock = listen(host, port)
    url = address(sock)
    server = _server(app, "warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise OctSrganError(f"{url}: the server did not start")
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
