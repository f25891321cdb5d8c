"""What a server is allowed to do and how hard it may be pushed (no heavy imports here)."""

from __future__ import annotations

from dataclasses import dataclass

from ceir_sdk.errors import BadInputError

#: Hosts that only this machine can reach; anything else needs a token or a deliberate choice.
LOOPBACK = ("127.0.0.1", "::1", "localhost")
DEFAULT_TOKEN_ENV = "CEIR_SERVE_TOKEN"


@dataclass
class ServeSettings:
    """Limits and behaviour of one server (one Ray Serve replica).

    ``max_batch_size`` / ``max_wait_ms``: dynamic batching, as Triton and TEI do it: requests
    arriving within ``max_wait_ms`` of the first one waiting run as one batch of at most
    ``max_batch_size`` items (``max_batch_size=1``: every item runs alone, no batching).
    ``max_body_bytes``, ``max_items`` (inputs per request), ``max_pixels`` (per decoded image;
    None: the runtime's own limit) and ``request_timeout_s`` bound what one request may cost.
    ``token_env`` names the environment variable holding the bearer token (unset or empty:
    no authentication); the token itself is never stored here, so it cannot leak into logs.
    """

    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_body_bytes: int = 16 * 1024 * 1024
    max_items: int = 64
    max_pixels: int | None = None
    request_timeout_s: float = 30.0
    allow_writes: bool = False
    token_env: str = DEFAULT_TOKEN_ENV
    decode_workers: int = 2
    model_name: str | None = None
    providers: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    backend: str = "auto"  # onnxruntime, openvino, or auto (ceir_onnx.runtime.tune)
    allow_cpu_fallback: bool = False
    explain_top: int = 5

    def __post_init__(self) -> None:
        checks = [
            ("max_batch_size", self.max_batch_size >= 1, ">= 1"),
            ("max_wait_ms", self.max_wait_ms >= 0, ">= 0"),
            ("max_body_bytes", self.max_body_bytes >= 1024, ">= 1024"),
            ("max_items", self.max_items >= 1, ">= 1"),
            ("request_timeout_s", self.request_timeout_s > 0, "> 0"),
            ("decode_workers", self.decode_workers >= 1, ">= 1"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise BadInputError(f"{name} must be {rule}; got {getattr(self, name)!r}")
        if self.max_pixels is not None and self.max_pixels <= 0:
            raise BadInputError(f"max_pixels must be positive; got {self.max_pixels}")
