"""The export-friendly attention (ceir_onnx.attention): the same numbers as nn.MultiheadAttention,
fewer Transpose nodes in the exported graph, and the original modules back after export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
from ceir_onnx.attention import export_friendly_attention, rewritten
from ceir_onnx.bundle import MANIFEST


class Block(torch.nn.Module):
    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(32, 4, batch_first=batch_first)

    def forward(self, x: torch.Tensor, mask: Any = None, **kwargs: Any) -> Any:
        return self.attn(x, x, x, attn_mask=mask, **kwargs)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("mask", [None, "float", "bool"])
def test_same_numbers_as_multihead_attention(batch_first: bool, mask: str | None) -> None:
    torch.manual_seed(0)
    block = Block(batch_first).eval()
    x = torch.randn(3, 7, 32) if batch_first else torch.randn(7, 3, 32)
    causal = torch.triu(torch.ones(7, 7, dtype=torch.bool), diagonal=1)  # True: masked out
    m = {None: None, "bool": causal, "float": torch.zeros(7, 7).masked_fill(causal, float("-inf"))}[mask]
    with torch.no_grad():
        want = block(x, m, need_weights=False)[0]
        with export_friendly_attention(block) as wrappers:
            assert len(wrappers) == 1 and block.attn is wrappers[0] and rewritten(wrappers) == 0
            got, weights = block(x, m, need_weights=False)
            assert weights is None
            # calls the short path does not cover go to the original module
            fallback = block(x, m, need_weights=True)
            assert fallback[1] is not None and wrappers[0].rewritten_calls == 1
    assert isinstance(block.attn, torch.nn.MultiheadAttention)  # put back
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fallback[0], want, atol=1e-5, rtol=1e-5)


def test_bundle_exports_fewer_transposes_and_matches_the_original(tiny: Any, bundle: Path, tmp_path: Path) -> None:
    """The tiny ViT's attention is rewritten in the exported image graph (the manifest counts it),
    the graph has fewer Transposes than the same model exported as nn.MultiheadAttention, and the
    exporter's parity check (against the original module) holds."""
    from ceir_onnx.export import IMAGE_INPUT, IMAGE_OUTPUTS, _export_graph, _image_graph_module

    manifest = json.loads((bundle / MANIFEST).read_text())
    image = manifest["graphs"]["image"]
    # the image tower's layers only (the image wrapper of a CLIP also holds its text tower)
    layers = sum(isinstance(m, torch.nn.MultiheadAttention) for m in tiny[0].image_module.modules())
    visual = getattr(getattr(tiny[0].image_module, "clip", None), "visual", None)
    if visual is not None:
        layers = sum(isinstance(m, torch.nn.MultiheadAttention) for m in visual.modules())
    assert layers > 0 and image["export_rewrites"] == {"attention": layers}
    assert all(v["max_abs_diff"] <= 1e-4 for k, v in image["variants"]["fp32"]["agreement_to_torch"].items()
               if k != "image_features")
    shape = [d.dim_value or 2 for d in onnx.load(str(bundle / "image.onnx")).graph.input[0].type.tensor_type.shape.dim]
    plain = tmp_path / "plain.onnx"
    _export_graph(_image_graph_module(tiny[0]), torch.randn(*shape), plain, IMAGE_INPUT, IMAGE_OUTPUTS, 18)

    def transposes(path: Path) -> int:
        return sum(n.op_type == "Transpose" for n in onnx.load(str(path)).graph.node)

    assert transposes(bundle / "image.onnx") < transposes(plain)
