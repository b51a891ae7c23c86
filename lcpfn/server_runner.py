"""Running the lcpfn server: a listening socket for uvicorn, and :class:`ServerThread`, uvicorn in a
background thread (tests, notebooks). Part of :mod:`lcpfn.server`, which re-exports these names."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from lcpfn.errors import InputError

if TYPE_CHECKING:
    from fastapi import FastAPI


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port=0``: a free port, read it back with
    ``sock.getsockname()[1]``) to hand to uvicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections queue from now on, before the server's loop takes them
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot bind host {host!r} port {port}: {exc.strerror or exc}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ServerThread:
    """Serve ``app`` with uvicorn in a background thread (tests, notebooks)::

        with ServerThread(create_app({"default": model})) as server:
            client = ForecastClient(server.url)

    Binds ``host`` (loopback by default) on a free port unless ``port`` is given; leaving the
    block stops the server and waits for it.
    """

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                 start_timeout_s: float = 120.0) -> None:
        self.app, self.host, self.port, self.log_level = app, host, port, log_level
        self.start_timeout_s = start_timeout_s
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def __enter__(self) -> ServerThread:
        import uvicorn

        self._sock = bind(self.host, self.port)
        self.url = url_of(self._sock)
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level=self.log_level, lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="lcpfn-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the lcpfn server at {self.url} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self._sock is not None:
            self._sock.close()
