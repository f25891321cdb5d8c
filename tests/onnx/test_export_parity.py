"""Export a tiny real open_clip model + CEIR head and check the bundle against torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from ceir_onnx.export import _image_graph_module
from ceir_onnx.runtime import Runtime
from onnx_helpers import photo_like


def _torch_outputs(parts: Any, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        concepts, latent, _ = _image_graph_module(parts)(torch.from_numpy(pixels))
    return concepts.numpy(), latent.numpy()


@pytest.mark.parametrize("batch", [1, 3, 17])
def test_fp32_parity_with_torch(tiny: Any, bundle: Path, batch: int) -> None:
    parts, _ = tiny
    rt = Runtime(bundle, precision="fp32", providers="cpu", batch_size=32)
    pixels = rt.preprocess(photo_like(batch, seed=batch))
    assert pixels.shape == (batch, 3, 32, 32)
    ref_c, ref_l = _torch_outputs(parts, pixels)
    out = rt.run_pixels(pixels)
    assert out.concepts.shape == ref_c.shape and out.latent.shape == ref_l.shape
    assert np.abs(out.concepts - ref_c).max() <= 1e-4
    assert np.abs(out.latent - ref_l).max() <= 1e-4
    # images straight from arrays go through the same preprocessing and graph
    assert np.allclose(rt.embed(photo_like(batch, seed=batch)), out.latent, atol=1e-6)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_reduced_precision_agreement(tiny: Any, bundle: Path, precision: str) -> None:
    parts, _ = tiny
    rt = Runtime(bundle, precision=precision, providers="cpu")
    pixels = rt.preprocess(photo_like(17, seed=5))
    ref_c, ref_l = _torch_outputs(parts, pixels)
    out = rt.run_pixels(pixels)
    assert _cos(out.latent, ref_l).min() >= 0.999
    assert _cos(out.concepts, ref_c).min() >= 0.999
    agreement = rt.manifest["graphs"]["image"]["variants"][precision]["agreement_to_fp32"]
    assert agreement["latent"]["min_cosine"] >= 0.999


def test_manifest_and_graphs(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["format"] == "ceir-onnx-bundle" and manifest["opset"] >= 17
    image = manifest["graphs"]["image"]
    assert [i["name"] for i in image["inputs"]] == ["pixels"]
    assert [o["name"] for o in image["outputs"]] == ["concepts", "latent", "image_features"]
    assert isinstance(image["inputs"][0]["shape"][0], str)  # dynamic batch dimension
    assert image["inputs"][0]["shape"][1:] == [3, 32, 32]
    assert set(image["variants"]) == {"fp32", "int8", "fp16"}
    assert image["variants"]["fp32"]["agreement_to_torch"]["latent"]["max_abs_diff"] <= 1e-4
    assert manifest["graphs"]["text"]["inputs"][0]["dtype"] == "int64"
    for name in manifest["files"]:
        if name.endswith(".onnx"):
            onnx.checker.check_model(str(bundle / name))
    assert "tokenizer/bpe_simple_vocab_16e6.txt.gz" in manifest["files"]
    assert json.loads((bundle / "concepts.json").read_text())[-1] == "green grass"


def test_text_graph_matches_open_clip(tiny: Any, bundle: Path) -> None:
    import open_clip

    _, clip = tiny
    rt = Runtime(bundle, providers="cpu")
    texts = ["striped fur", "a photo of a dog on a runway", "Feathers!"]
    with torch.no_grad():
        ref = clip.encode_text(open_clip.tokenize(texts)).numpy()
    assert np.abs(rt.embed_texts(texts) - ref).max() <= 1e-4
    # stored concept embeddings are the normalised text features of the concepts
    emb = rt.embed_texts(rt.concepts)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    assert np.abs(emb - rt.concept_text_embeddings).max() <= 1e-4


def test_existing_output_needs_overwrite(tiny: Any, bundle: Path) -> None:
    from ceir_onnx.export import export_bundle

    from ceir_sdk.errors import BadInputError

    before = (bundle / "manifest.json").read_bytes()
    with pytest.raises(BadInputError, match="--overwrite"):
        export_bundle(tiny[0], bundle, progress=False)
    assert (bundle / "manifest.json").read_bytes() == before
