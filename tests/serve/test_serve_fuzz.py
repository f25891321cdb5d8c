"""A schema-driven fuzz of every endpoint (schemathesis), bounded in examples: no 5xx, the server stays up.

schemathesis's pytest plugin does not run under this pytest (``'Function' object has no attribute
'_nodeid'``), so each operation's strategy is driven by hypothesis directly: valid bodies
(positive) and schema-violating ones (negative).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from serve_helpers import Server  # noqa: E402

# Bounded: examples per operation and mode (9 operations x 2 modes); no deadline (a request
# may wait for the batch before it).
MAX_EXAMPLES = 25


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_server_errors(server: Server, mode: Any) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    seen: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        seen.append(operation.label)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            response = case.call(base_url=server.url, timeout=60)
            assert response.status_code < 500, (case.method, case.path, case.body, response.text[:500])
            if response.status_code >= 400 and case.path != "/metrics":
                error = response.json()["error"]  # every refusal is JSON naming the problem
                assert error["message"] and "Traceback" not in response.text

        try:
            check()
        except Unsatisfiable:
            # An operation with no parameters and no body (GET /health) has no invalid input to make.
            assert mode == GenerationMode.NEGATIVE and operation.method.upper() == "GET", operation.label
    assert {"POST /v1/embeddings", "POST /v1/explain", "POST /v1/search", "POST /v1/items"} <= set(seen)
    assert httpx.get(f"{server.url}/ready", timeout=10).status_code == 200
