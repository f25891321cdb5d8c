"""Self-attention written for export: the same maths as ``torch.nn.MultiheadAttention`` with far
fewer transposes in the exported graph.

Why: ``nn.MultiheadAttention`` works sequence-first inside (a batch-first module transposes its
input, splits heads with reshape + transpose, and transposes back), and torch's exporter keeps
every one of those as a Transpose node: about 8 per layer on ViT-B-32 (97 in the image graph).
Once the matrix products are int8 or bf16, those copies are 13-14% of the time. Computing the
projections batch-first and the heads with one permute and ``scaled_dot_product_attention``
leaves 3 per layer (37). Measured side by side, alone, ViT-B-32 batch 32: onnxruntime int8 at
one thread 1.09x, OpenVINO bf16 1.07x, fp32 unchanged (benchmarks/onnx_speed.py records it).

Only what the exporter checks is swapped, and only while exporting: the parity check then
compares the exported graph with the *original* module, so a wrong rewrite cannot pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _attention_class() -> Any:
    import torch
    import torch.nn.functional as F

    class ExportAttention(torch.nn.Module):
        """Wraps (shares the weights of) one nn.MultiheadAttention; self-attention without
        weights or padding masks takes the short path, any other call the original module."""

        def __init__(self, mha: torch.nn.MultiheadAttention) -> None:
            super().__init__()
            self.mha = mha
            self.rewritten_calls = 0  # calls that took the short path (what the export traced)

        def forward(self, query: Any, key: Any = None, value: Any = None, key_padding_mask: Any = None,
                    need_weights: bool = True, attn_mask: Any = None, **kwargs: Any) -> tuple[Any, Any]:
            m = self.mha
            key = query if key is None else key
            value = query if value is None else value
            if (need_weights or key_padding_mask is not None or kwargs.get("is_causal") or key is not query
                    or value is not query or query.dim() != 3):
                return m(query, key, value, key_padding_mask=key_padding_mask, need_weights=need_weights,
                         attn_mask=attn_mask, **kwargs)
            self.rewritten_calls += 1
            x = query if m.batch_first else query.transpose(0, 1)
            n, length, width = x.shape
            heads = m.num_heads
            qkv = F.linear(x, m.in_proj_weight, m.in_proj_bias)
            qkv = qkv.view(n, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
            if attn_mask is not None and attn_mask.dtype == torch.bool:
                attn_mask = ~attn_mask  # MultiheadAttention: True = masked out; SDPA: True = attends
            out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)
            out = F.linear(out.transpose(1, 2).reshape(n, length, width), m.out_proj.weight, m.out_proj.bias)
            return (out if m.batch_first else out.transpose(0, 1)), None

    return ExportAttention


def _swappable(module: Any) -> bool:
    import torch

    return (isinstance(module, torch.nn.MultiheadAttention) and module._qkv_same_embed_dim
            and module.in_proj_weight is not None and module.bias_k is None and not module.add_zero_attn)


@contextmanager
def export_friendly_attention(root: Any) -> Iterator[list[Any]]:
    """Within the block, every plain self-attention ``nn.MultiheadAttention`` under ``root`` is
    replaced by ExportAttention (sharing its weights); the originals are put back on exit.
    Yields the wrappers: ``rewritten(wrappers)`` after an eager call counts those the forward
    actually runs (a CLIP's image wrapper also holds the unused text tower; torch.export's trace
    does not update the counters)."""
    export_attention = _attention_class()
    swapped: list[tuple[Any, str, Any]] = []
    wrappers: list[Any] = []
    for parent in list(root.modules()):
        for name, child in list(parent.named_children()):
            if _swappable(child):
                swapped.append((parent, name, child))
                wrappers.append(export_attention(child))
                setattr(parent, name, wrappers[-1])
    try:
        yield wrappers
    finally:
        for parent, name, child in reversed(swapped):
            setattr(parent, name, child)


def rewritten(wrappers: list[Any]) -> int:
    """How many of the wrapped attention modules ran their rewritten path."""
    return sum(1 for w in wrappers if w.rewritten_calls)
