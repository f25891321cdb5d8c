"""Simulates a plugin that fails at import, e.g. a missing dependency.

It only breaks when CEIR_TEST_BREAK_PLUGIN is set, so the dev environment stays usable.
"""

from __future__ import annotations

import os
from typing import Any

from ceir_sdk import hookimpl

if os.environ.get("CEIR_TEST_BREAK_PLUGIN"):
    raise ImportError("ceir_broken_plugin: simulated missing dependency 'nonexistent_lib'")


@hookimpl
def register_concept_sources(register: Any) -> None:
    register("broken-but-fine", lambda spec, **options: None)
