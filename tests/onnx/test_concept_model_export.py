"""A model with a separate concept model (issue 25) exported to ONNX: the image graph is the
backbone + projection (the concept model is not needed to embed images), and text queries go
through the concept model's text tower, exported in the bundle, with the same parity checks.

Two tiny real open_clip architectures of different widths (random weights) play backbone (32)
and concept model (48).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from onnx_helpers import photo_like

from ceir_sdk import plugins as ceir_plugins
from ceir_sdk.errors import BadInputError

BACKBONE, CONCEPT_MODEL = "ceir-onnx-cm-32", "ceir-onnx-cm-48"
CONCEPTS = ["striped fur", "green grass", "blue water", "a runway", "feathers", "red brick wall", "snow",
            "a wooden table", "clouds in the sky", "metal wheels", "sand", "leaves"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import open_clip
    from ceir_onnx.export import export_model_dir
    from ceir_onnx.runtime import Runtime

    from ceir_sdk.model import CEIRModel

    cfg_dir = tmp_path_factory.mktemp("open_clip_cfg")
    for name, width in ((BACKBONE, 32), (CONCEPT_MODEL, 48)):
        (cfg_dir / f"{name}.json").write_text(json.dumps({
            "embed_dim": width,
            "vision_cfg": {"image_size": 32, "layers": 1, "width": width, "patch_size": 8, "head_width": 16},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": width, "heads": 2, "layers": 1}}))
    open_clip.add_model_config(cfg_dir)
    host = ceir_plugins.PluginHost()
    host.load_entry_points(only=["open-clip", "vae", "onnx"])
    ceir_plugins.reset_host(host)
    try:
        model = CEIRModel(f"open-clip:{BACKBONE}", concept_model=f"open-clip:{CONCEPT_MODEL}", latent="pca",
                          latent_options={"latent_dim": 4}, backbone_options={"cache": False},
                          concept_model_options={"cache": False}, bottleneck={"interpretability_cutoff": 0.2})
        model.fit(photo_like(60, seed=21), CONCEPTS, progress=False)
        model_dir = model.save(tmp_path_factory.mktemp("model") / "model")
        bundle = export_model_dir(model_dir, tmp_path_factory.mktemp("bundle") / "bundle", progress=False)
        runtime = Runtime(bundle, providers="cpu", precision="fp32")
        yield {"model": model, "bundle": bundle, "runtime": runtime, "images": photo_like(9, seed=22)}
    finally:
        ceir_plugins.reset_host(None)


def test_the_manifest_says_where_texts_live(exported: dict[str, Any]) -> None:
    manifest = json.loads((exported["bundle"] / "manifest.json").read_text())
    assert manifest["text_space"] == "concept_model"
    assert (manifest["embed_dim"], manifest["text_embed_dim"]) == (32, 48)  # head input vs concept model texts
    assert manifest["model"]["concept_model"]["name"] == f"open-clip:{CONCEPT_MODEL}"
    assert set(manifest["graphs"]) == {"image", "head", "latent", "text"}
    # the text graph passed the same parity check as the image graph
    assert manifest["graphs"]["text"]["variants"]["fp32"]["agreement_to_torch"]["text_features"]["max_abs_diff"] < 1e-4


def test_images_embed_with_the_backbone_and_projection_alone(exported: dict[str, Any]) -> None:
    model, rt, images = exported["model"], exported["runtime"], exported["images"]
    emb = rt.embed(images, output="all")
    assert emb.image_features.shape[1] == 32  # the backbone's width: no concept model in the image graph
    concepts, latent = model.encode(images, output="both", progress=False)
    np.testing.assert_allclose(emb.concepts, concepts, atol=1e-4)
    np.testing.assert_allclose(emb.latent, latent, atol=1e-4)


def test_text_queries_go_through_the_concept_models_tower(exported: dict[str, Any]) -> None:
    model, rt = exported["model"], exported["runtime"]
    queries = ["striped fur", "a photo of snow", "an unseen thing"]
    np.testing.assert_allclose(rt.embed_texts(queries), model.concept_model.encode_texts(queries), atol=1e-4)
    concepts, latent = rt.encode_texts(queries)
    want_concepts, want_latent = model.encode_texts(queries)
    np.testing.assert_allclose(concepts, want_concepts, atol=1e-3)
    np.testing.assert_allclose(latent, want_latent, atol=1e-3)
    # text features and the backbone's image features are different spaces: refused, with the way out
    with pytest.raises(BadInputError, match="encode_texts"):
        rt.concept_similarity(exported["images"][:2], queries)
