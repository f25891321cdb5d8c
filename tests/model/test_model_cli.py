"""ceir fit / encode / explain / cluster end to end on a drawn world with a tiny backbone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from model_synthetic import TinyBackbone

from ceir_sdk import plugins as ceir_plugins
from ceir_sdk.cli.main import build


class _TinyPlugin:
    @staticmethod
    @ceir_plugins.hookspecs.hookimpl
    def register_backbones(register: Any) -> None:
        register("tiny", lambda spec=None, **kw: TinyBackbone(**kw))


@pytest.fixture
def cli(vae_host: ceir_plugins.PluginHost) -> Any:
    vae_host.register(_TinyPlugin(), name="tiny")
    return build()


def _run(cli: Any, args: list[str]) -> str:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return str(result.output)


def test_fit_encode_explain_cluster(cli: Any, tmp_path: Path) -> None:
    model = tmp_path / "model"
    out = _run(cli, ["fit", str(model), "--dataset", "world10", "-n", "120", "--backbone", "tiny",
                     "--latent", "pca", "--latent-option", "latent_dim=4"])
    assert "kept of" in out and "label information" in out and (model / "config.json").is_file()
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["label_information"]["class_names_in_concepts"] is False
    assert "ladybug" not in cfg["concepts"]

    _run(cli, ["encode", str(model), "--dataset", "world10", "--split", "test", "-n", "20",
               "--output", "both", "--out", str(tmp_path / "e.npz")])
    with np.load(tmp_path / "e.npz", allow_pickle=False) as arrays:
        assert arrays["latent"].shape == (20, 4)
        assert arrays["concepts"].shape == (20, len(cfg["concepts"]))
        assert list(arrays["concept_names"]) == cfg["concepts"] and len(arrays["image_ids"]) == 20

    out = _run(cli, ["explain", str(model), "--dataset", "world10", "--split", "test", "--limit", "2",
                     "--out-dir", str(tmp_path / "x")])
    assert "complete within" in out
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [
        "explain_000.png", "explain_001.png", "explanations.json"]
    assert (tmp_path / "x" / "explain_000.png").read_bytes()[:4] == b"\x89PNG"

    out = _run(cli, ["cluster", str(model), "--dataset", "world10", "--split", "test", "-n", "40", "-k", "3",
                     "--restarts", "2", "--out-dir", str(tmp_path / "c")])
    assert "vs. labels: nmi=" in out
    summary = json.loads((tmp_path / "c" / "clusters.json").read_text())
    assert summary["k"] == 3 and len(summary["assignments"]) == 40
    assert (tmp_path / "c" / "clusters.png").read_bytes()[:4] == b"\x89PNG"


def test_fit_without_inputs_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["fit", str(tmp_path / "m"), "--backbone", "tiny"])
    assert result.exit_code == 2 and "exactly one of" in result.output


def test_fit_can_turn_presence_by_parts_off_and_cluster_uses_the_default_restarts(
        cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ceir_sdk.model import CEIRModel
    from ceir_sdk.model.cluster import DEFAULT_RESTARTS

    model = tmp_path / "model"
    _run(cli, ["fit", str(model), "--dataset", "world10", "-n", "120", "--backbone", "tiny",
               "--latent", "pca", "--latent-option", "latent_dim=4", "--no-presence-by-parts"])
    assert json.loads((model / "config.json").read_text())["presence"]["by_parts"] is False

    asked: list[int] = []
    original = CEIRModel.cluster

    def recording(self: CEIRModel, *args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs["restarts"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CEIRModel, "cluster", recording)
    _run(cli, ["cluster", str(model), "--dataset", "world10", "--split", "test", "-n", "30", "-k", "3",
               "--out-dir", str(tmp_path / "c")])
    assert asked == [DEFAULT_RESTARTS]
    # the help text states the default by hand (importing the model at CLI start-up would pull torch)
    assert f"[default: {DEFAULT_RESTARTS}]" in CliRunner().invoke(cli, ["cluster", "--help"]).output


def test_a_bundle_given_to_a_torch_command_says_what_to_use_instead(cli: Any, vae_host: ceir_plugins.PluginHost,
                                                                    tmp_path: Path) -> None:
    vae_host.load_entry_points(only=["onnx"])  # the exporter recognises its bundles; the core knows no format
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps({"format": "ceir-onnx-bundle"}))
    np.save(tmp_path / "f.npy", np.zeros((3, 16), np.float32))
    result = CliRunner().invoke(cli, ["encode", str(bundle), "--features", str(tmp_path / "f.npy"),
                                      "--out", str(tmp_path / "z.npy")])
    message = str(result.exception)
    assert result.exit_code != 0 and "is an exported bundle (onnx)" in message and "ceir index" in message, message


def test_fit_reads_the_concept_sets_that_ceir_concepts_writes(cli: Any, tmp_path: Path) -> None:
    from ceir_sdk.concepts import ConceptSet
    from ceir_sdk.model.world_concepts import oracle_concepts
    from ceir_sdk.worlds import World

    phrases = [*oracle_concepts(World("world10"), include_class_names=False)[:40], "ladybug"]
    concept_file = ConceptSet.from_phrases(phrases, source="static:test", class_names=["ladybug", "zebra"]).save(
        tmp_path / "concepts.json")
    model = tmp_path / "model"
    _run(cli, ["fit", str(model), "--dataset", "world10", "-n", "120", "--backbone", "tiny",
               "--latent", "pca", "--latent-option", "latent_dim=4", "--concepts", str(concept_file)])
    cfg = json.loads((model / "config.json").read_text())
    assert set(cfg["concepts"]) <= set(phrases) and len(cfg["concepts"]) > 10
    info = cfg["label_information"]
    assert info["concept_source"] == "static:test" and info["class_names_in_concepts"] is True
    assert info["class_names_in_prompts"] is False


def test_fit_refuses_a_json_concept_file_it_cannot_read(cli: Any, tmp_path: Path) -> None:
    bad = tmp_path / "concepts.json"
    bad.write_text(json.dumps({"concepts": [{"text": "red"}]}))
    result = CliRunner().invoke(cli, ["fit", str(tmp_path / "m"), "--dataset", "world10", "-n", "120",
                                      "--backbone", "tiny", "--concepts", str(bad)])
    assert result.exit_code != 0 and "ceir concepts generate" in str(result.exception)


def test_fit_passes_backbone_options_and_encode_reuses_them(cli: Any, tmp_path: Path) -> None:
    model = tmp_path / "model"
    _run(cli, ["fit", str(model), "--dataset", "world10", "-n", "120", "--backbone", "tiny", "--backbone-option",
               "seed=7", "--backbone-option", "device=cpu", "--latent", "pca", "--latent-option", "latent_dim=4"])
    cfg = json.loads((model / "config.json").read_text())
    # The seed makes the weights and is kept; the device belongs to the machine, not the model.
    assert cfg["backbone_options"] == {"seed": 7} and cfg["backbone"]["seed"] == 7
    _run(cli, ["encode", str(model), "--dataset", "world10", "--split", "test", "-n", "5", "--out",
               str(tmp_path / "e.npz"), "--backbone-option", "device=cpu"])
    other = CliRunner().invoke(cli, ["encode", str(model), "--dataset", "world10", "--split", "test", "-n", "5",
                                     "--out", str(tmp_path / "f.npz"), "--backbone-option", "seed=8"])
    assert other.exit_code != 0 and "seed: fitted with 7, now 8" in str(other.exception)
    assert "--backbone-option seed=N" in str(other.exception)
    result = CliRunner().invoke(cli, ["fit", str(model), "--dataset", "world10", "--backbone", "tiny",
                                      "--backbone-option", "seed"])
    assert result.exit_code == 2 and "--backbone-option 'seed' must look like key=value" in result.output
    again = CliRunner().invoke(cli, ["fit", str(model), "--dataset", "world10", "-n", "120", "--backbone", "tiny",
                                     "--latent", "pca", "--latent-option", "latent_dim=3"])
    assert again.exit_code == 2 and "pass --overwrite" in again.output
    assert json.loads((model / "config.json").read_text())["backbone_options"] == {"seed": 7}  # untouched
    _run(cli, ["fit", str(model), "--dataset", "world10", "-n", "120", "--backbone", "tiny", "--latent", "pca",
               "--latent-option", "latent_dim=3", "--overwrite"])
    assert json.loads((model / "config.json").read_text())["latent_model"]["latent_dim"] == 3
