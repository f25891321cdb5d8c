"""What a plugin author sees when a plugin gets something wrong: the plugin named, and the way out."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from typing import Any

import pytest

from ceir_sdk import hookimpl
from ceir_sdk.contracts import LLM_SOURCE_OPTIONS
from ceir_sdk.errors import BadInputError, DuplicateNameError, PluginError, PluginLoadError, UnknownNameError
from ceir_sdk.plugins import PluginHost


class _Plugin:
    """Registers one backbone factory under a name, as a third-party plugin would."""

    def __init__(self, name: str, factory: Any, **register_kwargs: Any) -> None:
        self.name, self.factory, self.register_kwargs = name, factory, register_kwargs

    @hookimpl
    def register_backbones(self, register: Any) -> None:
        register(self.name, self.factory, **self.register_kwargs)


class _Backbone:
    name = "good"
    embed_dim = 3

    def __init__(self, spec: str | None = None, *, seed: int = 0) -> None:
        self.seed = seed

    def encode_images(self, images: Any, **kwargs: Any) -> Any:
        return None

    def encode_texts(self, texts: Any) -> Any:
        return None

    def spec(self) -> dict[str, Any]:
        return {"name": self.name}


def test_an_option_the_factory_does_not_take_is_refused_with_the_ones_it_does(plugin_host: PluginHost) -> None:
    plugin_host.register(_Plugin("good", _Backbone), name="third-party")
    assert plugin_host.resolve("backbone", "good", seed=3).seed == 3
    with pytest.raises(BadInputError, match=r"backbone 'good' \(plugin 'third-party'\) does not take.*devcie.*seed"):
        plugin_host.resolve("backbone", "good", devcie="cpu")


def test_declared_options_bound_a_factory_that_takes_any(plugin_host: PluginHost) -> None:
    def factory(spec: str | None, **options: Any) -> _Backbone:
        return _Backbone(spec, **options)

    plugin_host.register(_Plugin("declared", factory, options=["seed"]), name="third-party")
    assert plugin_host.resolve("backbone", "declared", seed=2).seed == 2
    with pytest.raises(BadInputError, match="takes: seed"):
        plugin_host.resolve("backbone", "declared", n_samples=2)


def test_a_factory_that_raises_is_named(plugin_host: PluginHost) -> None:
    def factory(spec: str | None, **options: Any) -> Any:
        raise ValueError("weights file is missing")

    plugin_host.register(_Plugin("raises", factory), name="third-party")
    with pytest.raises(PluginError, match=r"plugin 'third-party'.*ValueError: weights file is missing") as err:
        plugin_host.resolve("backbone", "raises:x")
    assert isinstance(err.value.__cause__, ValueError)


def test_a_component_that_breaks_its_contract_is_refused(plugin_host: PluginHost) -> None:
    plugin_host.register(_Plugin("not-a-backbone", lambda spec, **o: object()), name="third-party")
    with pytest.raises(PluginError, match=r"lacks name, embed_dim, encode_images, encode_texts, spec.*docs/plugins.md"):
        plugin_host.resolve("backbone", "not-a-backbone")


class _Misspelt:
    @hookimpl
    def register_backbone(self, register: Any) -> None:  # the hook is register_backbones
        register("never", _Backbone)


def test_a_misspelt_hook_is_reported_with_the_right_name(plugin_host: PluginHost,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CEIR_STRICT_PLUGINS", raising=False)
    plugin_host.register(_Misspelt(), name="typo")
    status = plugin_host.statuses["typo"]
    assert not status.ok and "did you mean 'register_backbones'" in (status.error or "")
    strict = PluginHost()
    monkeypatch.setenv("CEIR_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="register_backbone"):
        strict.register(_Misspelt(), name="typo")


def test_a_name_clash_marks_both_plugins_and_says_how_to_leave_one_out(plugin_host: PluginHost) -> None:
    plugin_host.register(_Plugin("same", _Backbone), name="first")
    plugin_host.register(_Plugin("same", _Backbone), name="second")
    with pytest.raises(DuplicateNameError, match="CEIR_SKIP_PLUGINS"):
        plugin_host.resolve("backbone", "same")
    assert not plugin_host.statuses["first"].ok and not plugin_host.statuses["second"].ok


def test_an_unknown_name_points_at_plugins_that_failed(plugin_host: PluginHost) -> None:
    plugin_host.register(_Plugin("same", _Backbone), name="first")
    plugin_host.register(_Plugin("same", _Backbone), name="second")
    with pytest.raises(UnknownNameError, match=r"failed to load: first, second.*ceir plugins"):
        plugin_host.resolve("backbone", "missing")


def test_skip_plugins_leaves_out_the_named_entry_points(plugin_host: PluginHost,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CEIR_LOAD_PLUGINS", raising=False)
    monkeypatch.setenv("CEIR_SKIP_PLUGINS", "test-plugin,broken-plugin")
    plugin_host.load_entry_points()
    assert "test-plugin" not in plugin_host.statuses and "vae" in plugin_host.statuses


def test_llm_source_options_are_the_ones_llm_concept_source_takes() -> None:
    from ceir_sdk.concepts import LLMConceptSource

    parameters = inspect.signature(LLMConceptSource).parameters
    assert set(LLM_SOURCE_OPTIONS) == set(parameters) - {"adapter"}


def test_concepts_generate_sends_llm_settings_only_to_sources_that_take_them(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEIR_")}
    run = [sys.executable, "-m", "ceir_sdk", "concepts", "generate", "test-echo", "--class", "cat", "-o"]
    ok = subprocess.run([*run, str(tmp_path / "a.json")], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "1 concepts from test-echo for 1 classes" in ok.stdout
    refused = subprocess.run([*run, str(tmp_path / "b.json"), "--samples", "3"], capture_output=True, text=True,
                             env=env, timeout=120)
    assert refused.returncode == 2 and "'test-echo' does not use --samples" in refused.stderr
    assert not (tmp_path / "b.json").exists()


def test_cli_names_the_plugin_an_unexpected_error_came_from() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEIR_")}
    result = subprocess.run([sys.executable, "-m", "ceir_sdk", "test-hello", "--fail"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert "RuntimeError: the plugin's own bug" in result.stderr  # the traceback stays for its authors
    assert "raised inside plugin 'test-plugin' (ceir-test-plugin 0.0.1) at __init__.py:" in result.stderr


class _ListSource:
    name = "lists"

    def __init__(self, spec: str | None = None) -> None:
        pass

    def generate(self, class_names: Any, *, domain: str | None = None, progress: bool = True) -> Any:
        return list(class_names)  # should be a ConceptSet


class _ListPlugin:
    @hookimpl
    def register_concept_sources(self, register: Any) -> None:
        register("lists", _ListSource)


def test_a_concept_source_returning_the_wrong_type_is_named(plugin_host: PluginHost, tmp_path: Any) -> None:
    from click.testing import CliRunner

    from ceir_sdk.cli.main import build

    plugin_host.register(_ListPlugin(), name="list-plugin")
    result = CliRunner().invoke(build(), ["concepts", "generate", "lists", "--class", "cat", "-o",
                                          str(tmp_path / "c.json")])
    assert isinstance(result.exception, PluginError)
    assert "concept source 'lists' (plugin 'list-plugin') returned a list, not a ConceptSet" in str(result.exception)
    assert not (tmp_path / "c.json").exists()


def test_plugin_lists_in_the_environment_are_checked(plugin_host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CEIR_LOAD_PLUGINS", raising=False)
    monkeypatch.setenv("CEIR_SKIP_PLUGINS", "test-plugin,tset-plugin")
    plugin_host.load_entry_points()
    notes = " | ".join(plugin_host.notes)
    assert "CEIR_SKIP_PLUGINS names tset-plugin, which is not installed" in notes
    assert "left out by CEIR_SKIP_PLUGINS: test-plugin" in notes
