"""The plugin mechanism: entry points, failures, selection, name resolution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ceir_sdk import hookimpl
from ceir_sdk.errors import DuplicateNameError, PluginLoadError, UnknownNameError
from ceir_sdk.plugins import PluginHost

CEIR = [sys.executable, "-m", "ceir_sdk"]


def run_ceir(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CEIR_")}
    full_env.update(env)
    return subprocess.run([*CEIR, *args], capture_output=True, text=True, env=full_env, timeout=120)


def test_test_plugin_found_through_its_real_entry_point(plugin_host: PluginHost) -> None:
    plugin_host.load_entry_points(only=["test-plugin"])
    status = plugin_host.statuses["test-plugin"]
    assert status.ok
    assert status.distribution == "ceir-test-plugin"
    assert status.version == "0.0.1"
    assert "register_concept_sources" in status.hooks
    source = plugin_host.resolve("concept_source", "test-echo:anything", suffix="x")
    assert source.spec == "anything"
    assert source.generate(["cat"]).phrases == ["cat x"]


def test_name_resolution_passes_the_rest_of_the_name(plugin_host: PluginHost) -> None:
    plugin_host.load_entry_points(only=["test-plugin"])
    built = plugin_host.resolve("backbone", "test-backbone:ViT-B-32/laion2b_s34b_b79k", device="cpu")
    assert (built.spec_text, built.options) == ("ViT-B-32/laion2b_s34b_b79k", {"device": "cpu"})
    latent = plugin_host.resolve("latent_model", "test-latent")
    assert (latent.spec_text, latent.options) == (None, {})


def test_unknown_name_lists_what_is_available(plugin_host: PluginHost) -> None:
    plugin_host.load_entry_points(only=["test-plugin"])
    with pytest.raises(UnknownNameError) as err:
        plugin_host.resolve("backbone", "nope:thing")
    message = str(err.value)
    assert "'nope'" in message and "test-backbone" in message


def test_unknown_kind_is_an_error(plugin_host: PluginHost) -> None:
    with pytest.raises(UnknownNameError, match="kinds"):
        plugin_host.registrations("decoder")


class _Dup:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    @hookimpl
    def register_backbones(self, register: Any) -> None:
        register("same-name", lambda spec, **o: self.tag)


def test_duplicate_names_are_detected(plugin_host: PluginHost) -> None:
    plugin_host.register(_Dup("a"), name="dup-a")
    plugin_host.register(_Dup("b"), name="dup-b")
    with pytest.raises(DuplicateNameError, match="dup-a"):
        plugin_host.resolve("backbone", "same-name")
    failed = [s for s in plugin_host.statuses.values() if not s.ok]
    assert failed and "same-name" in (failed[0].error or "")


def test_duplicate_names_fatal_in_strict_mode(plugin_host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEIR_STRICT_PLUGINS", "1")
    plugin_host.register(_Dup("a"), name="dup-a")
    with pytest.raises(PluginLoadError) as err:  # one error naming both plugins of the clash
        plugin_host.register(_Dup("b"), name="dup-b")
    assert "'dup-a'" in str(err.value) and "'dup-b'" in str(err.value) and "same-name" in str(err.value)


def test_plugin_may_implement_a_subset_of_hook_arguments(plugin_host: PluginHost) -> None:
    class NoArgs:
        @hookimpl
        def register_exporters(self) -> None:  # takes none of the offered arguments
            NoArgs.called = True

    NoArgs.called = False
    plugin_host.register(NoArgs(), name="no-args")
    plugin_host.registrations("exporter")
    assert NoArgs.called


def _forget_broken_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fixture plugin breaks at import time; an earlier test that loaded every plugin (any CLI
    # test) leaves a working copy in sys.modules, so make the next load import it afresh.
    monkeypatch.delitem(sys.modules, "ceir_broken_plugin", raising=False)


def test_broken_plugin_is_reported_and_skipped(plugin_host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    _forget_broken_plugin(monkeypatch)
    monkeypatch.setenv("CEIR_TEST_BREAK_PLUGIN", "1")
    plugin_host.load_entry_points(only=["broken-plugin", "test-plugin"])
    broken = plugin_host.statuses["broken-plugin"]
    assert not broken.ok and "nonexistent_lib" in (broken.error or "")
    assert plugin_host.statuses["test-plugin"].ok
    assert "test-echo" in plugin_host.registrations("concept_source")


def test_broken_plugin_fatal_in_strict_mode(plugin_host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    _forget_broken_plugin(monkeypatch)
    monkeypatch.setenv("CEIR_TEST_BREAK_PLUGIN", "1")
    monkeypatch.setenv("CEIR_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="nonexistent_lib"):
        plugin_host.load_entry_points(only=["broken-plugin"])


def test_load_plugins_env_selects(plugin_host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEIR_LOAD_PLUGINS", "test-plugin")
    plugin_host.load_entry_points()
    assert set(plugin_host.statuses) == {"test-plugin"}


def test_load_plugins_env_empty_loads_none(plugin_host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEIR_LOAD_PLUGINS", "")
    plugin_host.load_entry_points()
    assert plugin_host.statuses == {}


def test_cli_plugins_lists_failure_without_breaking() -> None:
    result = run_ceir("plugins", "--json", CEIR_TEST_BREAK_PLUGIN="1")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["broken-plugin"]["ok"] is False
    assert "nonexistent_lib" in rows["broken-plugin"]["error"]
    assert rows["test-plugin"]["ok"] is True
    assert rows["test-plugin"]["registers"]["concept_source"] == ["test-echo"]
    help_result = run_ceir("--help", CEIR_TEST_BREAK_PLUGIN="1")
    assert help_result.returncode == 0
    assert "plugins" in help_result.stdout
    text = run_ceir("plugins", CEIR_TEST_BREAK_PLUGIN="1")
    assert "broken-plugin" in text.stdout and "FAILED" in text.stdout


def test_cli_strict_mode_fails_with_the_error() -> None:
    result = run_ceir("plugins", CEIR_TEST_BREAK_PLUGIN="1", CEIR_STRICT_PLUGINS="1")
    assert result.returncode != 0
    assert "nonexistent_lib" in result.stderr
    assert "Traceback (most recent call last)" not in result.stderr


def test_cli_plugin_command_registered_by_hook() -> None:
    result = run_ceir("test-hello", "ceir", CEIR_LOAD_PLUGINS="test-plugin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello ceir from test-plugin"


def test_cli_version() -> None:
    from ceir_sdk import __version__

    result = run_ceir("--version")
    assert result.returncode == 0 and __version__ in result.stdout


HEAVY = ["torch", "open_clip", "onnx", "onnxruntime", "openai", "anthropic", "faiss", "matplotlib"]


def test_help_leaves_heavy_modules_unimported() -> None:
    code = (
        "import sys\n"
        "from ceir_sdk.cli.main import build, cli\n"
        "build()\n"
        "try:\n"
        "    cli.main(args=['--help'], prog_name='ceir', standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEIR_")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("HEAVY="))
    assert line == "HEAVY=", f"ceir --help imported heavy modules: {line}"


def test_every_hookspec_is_documented_and_exercised() -> None:
    from ceir_sdk import hookspecs

    specs = [name for name in dir(hookspecs) if name.startswith("register_")]
    docs = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
    test_plugin = (
        Path(__file__).resolve().parents[1]
        / "plugin_fixtures"
        / "ceir-test-plugin"
        / "ceir_test_plugin"
        / "__init__.py"
    ).read_text()
    this_file = Path(__file__).read_text()
    assert specs, "no hookspecs found"
    for name in specs:
        assert f"`{name}`" in docs, f"hook {name} is not documented in docs/plugins.md"
        assert f"def {name}(" in test_plugin or f"def {name}(" in this_file, f"hook {name} has no test"
