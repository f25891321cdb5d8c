"""The head and latent graphs: text queries and concept edits without torch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import pytest
import torch
from ceir_onnx.bundle import MANIFEST, file_entry
from ceir_onnx.runtime import Runtime

from ceir_sdk.errors import BadInputError


@pytest.mark.parametrize("batch", [1, 3, 17])
def test_head_and_latent_graphs_match_torch(tiny: Any, bundle: Path, batch: int) -> None:
    parts, _ = tiny
    rt = Runtime(bundle, providers="cpu")
    feats = np.random.default_rng(batch).normal(size=(batch, 32)).astype(np.float32)
    with torch.no_grad():
        ref_c, ref_l = (t.numpy() for t in parts.head_module(torch.from_numpy(feats)))
        edited = ref_c.copy()
        edited[:, 2] = 3.0  # a concept raised, as an edit does
        ref_edit = parts.head_module.latent(torch.from_numpy(edited)).numpy()
    c, lat = rt.encode_features(feats)
    assert c.shape == (batch, 10) and lat.shape == (batch, 8)
    assert np.abs(c - ref_c).max() <= 1e-4
    assert np.abs(lat - ref_l).max() <= 1e-4
    assert np.abs(rt.concept_vector(edited) - ref_edit).max() <= 1e-4
    # the unedited activations map back to the latents the head gives
    assert np.abs(rt.concept_vector(c) - lat).max() <= 1e-4


def test_encode_texts_is_text_graph_head_text_scale_then_latent(tiny: Any, bundle: Path) -> None:
    from ceir_sdk.concepts.text_scale import standardise_text_activations, text_statistics

    parts, clip = tiny
    rt = Runtime(bundle, providers="cpu")
    texts = ["striped fur", "a runway at night"]
    with torch.no_grad():
        head_c, _ = (t.numpy() for t in parts.head_module(clip.encode_text(open_clip.tokenize(texts))))
        reference, _ = (t.numpy() for t in parts.head_module(torch.from_numpy(rt.concept_text_embeddings)))
    ref_c = standardise_text_activations(head_c, *text_statistics(reference))
    c, lat = rt.encode_texts(texts)
    assert np.abs(c - ref_c).max() <= 1e-4
    assert np.abs(lat - rt.concept_vector(ref_c)).max() <= 1e-4
    one_c, _ = rt.encode_texts("striped fur")
    assert one_c.shape == (1, 10)


def test_manifest_lists_query_graphs(bundle: Path) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    head, latent = manifest["graphs"]["head"], manifest["graphs"]["latent"]
    assert [i["name"] for i in head["inputs"]] == ["features"]
    assert [o["name"] for o in head["outputs"]] == ["concepts", "latent"]
    assert isinstance(head["inputs"][0]["shape"][0], str)  # dynamic batch
    assert [i["name"] for i in latent["inputs"]] == ["concepts"] and latent["inputs"][0]["shape"][1] == 10
    assert latent["variants"]["fp32"]["agreement_to_torch"]["latent"]["max_abs_diff"] <= 1e-4
    assert {"head.onnx", "latent.onnx"} <= set(manifest["files"])


def test_bad_query_input(bundle: Path) -> None:
    rt = Runtime(bundle, providers="cpu")
    with pytest.raises(BadInputError, match=r"\(N, 10\)"):
        rt.concept_vector(np.zeros((2, 9), np.float32))
    with pytest.raises(BadInputError, match="NaN"):
        rt.concept_vector(np.full((1, 10), np.nan, np.float32))
    with pytest.raises(BadInputError, match=r"\(N, 32\)"):
        rt.encode_features(np.zeros((2, 31), np.float32))


def test_older_bundle_without_query_graphs_still_loads(bundle: Path, tmp_path: Path) -> None:
    """A bundle written before the head/latent graphs existed: images work, the new methods
    fail with a message that says to re-export."""
    old = tmp_path / "old"
    shutil.copytree(bundle, old)
    manifest = json.loads((old / MANIFEST).read_text())
    for name in ("head", "latent"):
        del manifest["graphs"][name]
        del manifest["files"][f"{name}.onnx"]
        (old / f"{name}.onnx").unlink()
    (old / MANIFEST).write_text(json.dumps(manifest))
    rt = Runtime(old, providers="cpu")
    assert rt.embed(np.zeros((1, 32, 32, 3), np.uint8)).shape == (1, 8)
    with pytest.raises(BadInputError, match=r"no 'head' graph.*re-export"):
        rt.encode_texts(["striped fur"])
    with pytest.raises(BadInputError, match=r"no 'latent' graph.*re-export"):
        rt.concept_vector(np.zeros((1, 10), np.float32))
    assert file_entry(old / "image.onnx")["sha256"] == manifest["files"]["image.onnx"]["sha256"]


def test_int8_graph_keeps_the_head_in_float(bundle: Path) -> None:
    """The head magnifies feature error (z-scores by a small spread), so int8 leaves it float."""
    import onnx
    from ceir_onnx.variants import downstream_nodes

    model = onnx.load(str(bundle / "image.int8.onnx"))
    head = set(downstream_nodes(model, "image_features"))
    head_ops = [n.op_type for n in model.graph.node if n.name in head]
    assert head_ops.count("MatMul") == 3  # bottleneck and both VAE encoder layers
    assert not {"MatMulInteger", "DynamicQuantizeLinear"} & set(head_ops)
    assert "MatMulInteger" in {n.op_type for n in model.graph.node if n.name not in head}


def test_int8_keeps_last_backbone_layers_float_until_the_target(tiny: Any, tmp_path: Path) -> None:
    """An unreachable agreement target keeps float up to half of the backbone's weight MatMuls
    (the last ones), and the manifest says the target was not met."""
    import dataclasses

    import onnx
    from ceir_onnx.export import export_bundle
    from ceir_onnx.variants import backbone_matmuls

    parts = dataclasses.replace(tiny[0], text_module=None)
    out = export_bundle(parts, tmp_path / "b", int8=True, int8_min_cosine=1.0 + 1e-9, progress=False)
    variant = json.loads((out / MANIFEST).read_text())["graphs"]["image"]["variants"]["int8"]
    matmuls = backbone_matmuls(onnx.load(str(out / "image.onnx")), "image_features")
    kept = variant["kept_float"]["nodes"]
    assert variant["target_met"] is False
    assert 0 < len(kept) <= len(matmuls) // 2 and kept == matmuls[len(matmuls) - len(kept):]
    quantized = onnx.load(str(out / "image.int8.onnx"))
    names = {n.name for n in quantized.graph.node}
    assert all(k in names or f"{k}_MatMul" in names for k in kept)  # still float nodes
    assert variant["agreement_to_fp32"]["latent"]["min_cosine"] >= 0.99


def test_int8_graph_fuses_gelu_and_agrees(bundle: Path) -> None:
    """The int8 graph's erf GELUs become single Gelu nodes (fewer element-wise passes where the
    matrix products are already cheap) and it still agrees with the fp32 graph."""
    import onnx
    from ceir_onnx.variants import run_graph

    fp32 = onnx.load(str(bundle / "image.onnx"))
    int8 = onnx.load(str(bundle / "image.int8.onnx"))
    erfs = sum(n.op_type == "Erf" for n in fp32.graph.node)
    assert erfs > 0  # the tiny ViT's MLPs use erf GELU
    gelus = [n for n in int8.graph.node if n.op_type == "Gelu"]
    assert len(gelus) == erfs and all(n.domain == "com.microsoft" for n in gelus)
    assert not any(n.op_type == "Erf" for n in int8.graph.node)
    variant = json.loads((bundle / MANIFEST).read_text())["graphs"]["image"]["variants"]["int8"]
    assert variant["fused"] == {"Gelu": erfs}
    shape = [d.dim_value or 4 for d in fp32.graph.input[0].type.tensor_type.shape.dim]
    pixels = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    a, b = (run_graph(bundle / name, {"pixels": pixels})[-1] for name in ("image.onnx", "image.int8.onnx"))
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99  # image_features, the backbone's output
