"""Shared test set-up: never reach a hub, never load plugins a test did not ask for."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests must not write into the user's feature cache (~/.cache/ceir): one per test session,
# removed when the session ends so that repeated runs do not fill the disk.
if "CEIR_FEATURE_CACHE" not in os.environ:
    _session_cache = tempfile.mkdtemp(prefix="ceir-test-features-")
    os.environ["CEIR_FEATURE_CACHE"] = _session_cache
    atexit.register(shutil.rmtree, _session_cache, ignore_errors=True)



def _expose_fixture_plugins() -> None:
    """Make the plugins under tests/plugin_fixtures installed for this test session only.

    They are not pip-installed (a user's ``ceir --help`` must not list ``test-hello``): each
    gets a dist-info folder (its name, version and entry points from its pyproject.toml) in a
    temporary folder put on sys.path and on PYTHONPATH, so this process and the subprocesses
    tests start find them through importlib.metadata like any installed plugin.
    """
    site = Path(tempfile.mkdtemp(prefix="ceir-test-plugins-"))
    atexit.register(shutil.rmtree, site, ignore_errors=True)
    roots = []
    for root in sorted((Path(__file__).parent / "plugin_fixtures").iterdir()):
        pyproject = root / "pyproject.toml"
        if not pyproject.is_file():
            continue
        text = pyproject.read_text(encoding="utf-8")  # no tomllib on Python 3.10: the few keys by pattern
        name = re.search(r'^name = "([^"]+)"', text, re.M)
        version = re.search(r'^version = "([^"]+)"', text, re.M)
        section = re.search(r"^\[project\.entry-points\.ceir\]\n((?:[^\[\n].*\n?)*)", text, re.M)
        if not (name and version and section):
            raise RuntimeError(f"{pyproject}: expected name, version and [project.entry-points.ceir]")
        dist = site / f"{name.group(1).replace('-', '_')}-{version.group(1)}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.group(1)}\nVersion: {version.group(1)}\n")
        # TOML quotes the values (name = "module"); entry_points.txt does not
        lines = [line.replace('"', "").strip() for line in section.group(1).splitlines() if line.strip()]
        (dist / "entry_points.txt").write_text("[ceir]\n" + "\n".join(lines) + "\n")
        roots.append(str(root))
    paths = [str(site), *roots]
    sys.path[:0] = paths
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])


_expose_fixture_plugins()

import pytest  # noqa: E402

from ceir_sdk import plugins as ceir_plugins  # noqa: E402


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
