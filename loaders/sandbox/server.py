"""The sandbox process: REST app (uvicorn) and S3 flat-file endpoint (werkzeug) over one market and faults.

Both run in background threads on loopback, so tests, the demo and `quantmini sandbox serve` all use
the same object: `with SandboxServer(MarketConfig(...)) as server: os.environ.update(server.env())`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

from loaders.sandbox.faults import Faults
from loaders.sandbox.market import Market, MarketConfig
from loaders.sandbox.s3 import BUCKET, S3Endpoint

log = logging.getLogger(__name__)

# Fixed demo credentials: public by design, printed on start, accepted unless others are configured.
DEMO_API_KEY = "sandbox-demo-key"
DEMO_S3_ACCESS_KEY_ID = "SANDBOXACCESSKEY"
DEMO_S3_SECRET_ACCESS_KEY = "sandbox-secret-key"


class _RestThread:
    """uvicorn serving the REST app on a socket bound up front (so port 0 resolves immediately)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self, timeout: float = 15.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox REST server did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


class SandboxServer:
    """Serves a synthetic market over Polygon's REST API and S3 flat files until stopped."""

    def __init__(
        self,
        config: MarketConfig | None = None,
        host: str = "127.0.0.1",
        rest_port: int = 0,
        s3_port: int = 0,
        api_key: str | None = None,
        s3_access_key_id: str | None = None,
        s3_secret_access_key: str | None = None,
        faults: Faults | None = None,
        market: Market | None = None,
    ) -> None:
        self.market = market if market is not None else Market(config or MarketConfig())
        self.config = self.market.config
        self.faults = faults if faults is not None else Faults(seed=self.config.seed)
        self.host = host
        self.api_key = api_key or DEMO_API_KEY
        self.s3_access_key_id = s3_access_key_id or DEMO_S3_ACCESS_KEY_ID
        self.s3_secret_access_key = s3_secret_access_key or DEMO_S3_SECRET_ACCESS_KEY
        self._rest_port = rest_port
        self._s3_port = s3_port
        self._rest: _RestThread | None = None
        self._s3: S3Endpoint | None = None
        self.rest_available = True

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        if self._s3 is not None:
            return self
        self._s3 = S3Endpoint(
            self.market,
            self.faults,
            self.s3_access_key_id,
            self.s3_secret_access_key,
            self.host,
            self._s3_port,
        )
        try:
            self._s3.start()
            try:
                from loaders.sandbox.rest import create_app
            except ImportError as exc:
                self.rest_available = False
                log.warning("sandbox REST server unavailable (%s); serving S3 flat files only", exc)
            else:
                self._rest = _RestThread(
                    create_app(self.market, self.faults, self.api_key), self.host, self._rest_port
                )
                self._rest.start()
        except BaseException:
            self.stop()
            raise
        log.info(
            "sandbox serving %s (REST) and %s (S3), clock at %s",
            self.rest_url,
            self.s3_endpoint,
            self.market.today,
        )
        return self

    def stop(self) -> None:
        if self._rest is not None:
            self._rest.stop()
            self._rest = None
        if self._s3 is not None:
            self._s3.stop()
            self._s3 = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------------------------------

    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def rest_url(self) -> str | None:
        if self._rest is None:
            return None
        return f"http://{self._url_host()}:{self._rest.port}"

    @property
    def s3_endpoint(self) -> str | None:
        if self._s3 is None:
            return None
        return f"http://{self._url_host()}:{self._s3.port}"

    @property
    def s3_app(self) -> Any:
        """The S3 WSGI layer (request counts, render counts) for tests and diagnostics."""
        return self._s3.app if self._s3 is not None else None

    def env(self) -> dict[str, str]:
        """The configuration variables (README: Configuration) that point QuantMini at this sandbox."""
        if self._s3 is None:
            raise RuntimeError("SandboxServer.env(): the server is not running; call start() first")
        env = {
            "POLYGON_API_KEY": self.api_key,
            "POLYGON_S3_ENDPOINT": self.s3_endpoint or "",
            "POLYGON_S3_BUCKET": BUCKET,
            "POLYGON_S3_ACCESS_KEY_ID": self.s3_access_key_id,
            "POLYGON_S3_SECRET_ACCESS_KEY": self.s3_secret_access_key,
        }
        if self.rest_url:
            env = {"POLYGON_API_KEY": self.api_key, "POLYGON_API_URL": self.rest_url, **env}
        return env
