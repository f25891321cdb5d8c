"""Shared test set-up: never reach a hub, never load plugins a test did not ask for."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests must not write into the user's feature cache (~/.cache/ceir): one per test session,
# removed when the session ends so that repeated runs do not fill the disk.
if "CEIR_FEATURE_CACHE" not in os.environ:
    _session_cache = tempfile.mkdtemp(prefix="ceir-test-features-")
    os.environ["CEIR_FEATURE_CACHE"] = _session_cache
    atexit.register(shutil.rmtree, _session_cache, ignore_errors=True)

import pytest

from ceir_sdk import plugins as ceir_plugins


@pytest.fixture
def plugin_host(monkeypatch: pytest.MonkeyPatch) -> ceir_plugins.PluginHost:
    """A fresh plugin host with no entry points loaded; tests register what they need."""
    monkeypatch.delenv("CEIR_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("CEIR_STRICT_PLUGINS", raising=False)
    host = ceir_plugins.PluginHost()
    ceir_plugins.reset_host(host)
    yield host
    ceir_plugins.reset_host(None)


@pytest.fixture
def first_party_host(monkeypatch: pytest.MonkeyPatch) -> ceir_plugins.PluginHost:
    """A host with exactly the first-party plugins loaded through their entry points."""
    monkeypatch.delenv("CEIR_STRICT_PLUGINS", raising=False)
    host = ceir_plugins.PluginHost()
    host.load_entry_points(only=["open-clip", "vae", "openai", "anthropic", "static", "onnx"])
    ceir_plugins.reset_host(host)
    yield host
    ceir_plugins.reset_host(None)
