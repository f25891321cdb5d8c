"""A real server for the serve tests: uvicorn on 127.0.0.1, a free port, in a thread of the test process."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def data_uri(path: str | Path) -> str:
    data = Path(path).read_bytes()
    kind = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff"}.get(Path(path).suffix.lower(), "png")
    return f"data:image/{kind};base64," + base64.b64encode(data).decode("ascii")


def small_images(n: int, seed: int = 0) -> list[np.ndarray]:
    """Small photo-like images (gradients, a blob, noise) of two sizes, so requests stay light."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = (48, 64) if i % 2 else (40, 40)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        img = rng.uniform(0, 255, 3) * (0.5 + 0.5 * np.sin(xx / rng.uniform(3, 15)))[..., None]
        img += rng.uniform(0, 120, 3) * (yy / h)[..., None]
        cy, cx, r = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w, rng.uniform(5, 15)
        img[((yy - cy) ** 2 + (xx - cx) ** 2) < r**2] = rng.uniform(0, 255, 3)
        img += rng.normal(0, 8, img.shape)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


class Server:
    """uvicorn serving ``app`` in a daemon thread; ``url`` once ready. Stopped with ``stop()``."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                                    timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])),
                                       daemon=True)

    def start(self, timeout: float = 60) -> Server:
        import httpx

        self.thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.started:
                try:
                    if httpx.get(f"{self.url}/ready", timeout=5).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
            if not self.thread.is_alive():
                raise RuntimeError("the server thread died while starting")
            time.sleep(0.05)
        raise TimeoutError(f"server at {self.url} not ready after {timeout} s")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()
