"""ceir-serve: CEIR embeddings, explanations and concept search over HTTP.

    from ceir_serve import create_app, ServeSettings
    app = create_app("bundle/", index="index/")      # a FastAPI app; run it with uvicorn
    # or on the command line: ceir serve bundle/ --index index/ --port 8000

Endpoints: POST /v1/embeddings (OpenAI-compatible), /v1/explain, /v1/search, /v1/items
(with allow_writes), DELETE /v1/items/{id}; GET /health, /ready, /metrics, /docs.
"""

from typing import TYPE_CHECKING, Any

from ceir_serve.settings import ServeSettings

if TYPE_CHECKING:
    from ceir_serve.app import create_app

__version__ = "0.1.0"

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # The app pulls in fastapi and onnxruntime; importing the package (e.g. for the CLI's
    # entry point) must stay light.
    if name == "create_app":
        from ceir_serve.app import create_app

        return create_app
    raise AttributeError(name)
