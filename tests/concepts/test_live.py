"""Live calls to the real APIs: run only when the user's key is in the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ceir_sdk import get_concept_source


@pytest.mark.live
@pytest.mark.parametrize(("provider", "env"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")])
def test_live_generation(provider: str, env: str, first_party_host: Any, tmp_path: Path) -> None:
    if not os.environ.get(env):
        pytest.skip(f"{env} is not set: live {provider} test skipped (set it to run against the real API)")
    source = get_concept_source(provider, cache_dir=tmp_path, n_samples=1, max_in_flight=2)
    cs = source.generate(["zebra"], progress=False)
    assert len(cs) >= 3
    assert cs.generation["usage"] is not None
