"""The reference coordinator served in this process (uvicorn on a loopback port, in a thread), so
that the agent's real HTTP client — in a contract test, or the whole agent in a component test —
talks to it exactly as it talks to a deployed coordinator."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import uvicorn

from controller.clients.coordinator import CoordinatorClient, Patience
from rma_coordinator.app import Config, create_app
from rma_coordinator.tiers import Catalog
from rma_testkit.engine import wait_until

CATALOG = Catalog(
    {
        1: [{"name": "vllm", "image": "vllm/vllm-openai:v0.6.3", "port": 8000}],
        2: [{"name": "rag", "image": "ghcr.io/rma/rag-service:latest", "port": 8102}],
        3: [{"name": "redis", "image": "redis:7-alpine", "port": 6379}],
    }
)
ADMIN = "adm"


class Served:
    """The reference coordinator on a loopback port (`port`: that one again, with its database:
    the same coordinator back after an outage)."""

    def __init__(
        self, tmp_path: Path, catalog: Catalog = CATALOG, *, port: int = 0, **kw: Any
    ) -> None:
        if not port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        kw.setdefault("allow_private_workers", True)  # its workers are on loopback
        config = Config(
            db_path=kw.pop("db", None) or tmp_path / f"c{port}.db",
            catalog=catalog,
            admin_token=ADMIN,
            public_url=kw.pop("public_url", self.url),
            **kw,
        )
        self.app = create_app(config)
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_until(lambda: self._server.started, 10, "the coordinator to start", step=0.01)

    def client(self) -> CoordinatorClient:
        return CoordinatorClient(self.url, patience=Patience(attempts=1), sleep=lambda s: None)

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
