"""Build benchmark models: an open_clip architecture (random or given weights) + a CEIR head.

Used by benchmarks/onnx_speed.py and benchmarks/gpu_check.py; imports torch and open_clip.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def ceir_head(embed_dim: int, n_concepts: int = 200, hidden: int = 256, latent: int = 128, seed: int = 0) -> Any:
    """Bottleneck (bias-free linear) -> z-score -> VAE encoder mean (paper sizes)."""
    import torch

    torch.manual_seed(seed)

    class LatentMean(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = torch.nn.Sequential(
                torch.nn.Linear(n_concepts, hidden),
                torch.nn.BatchNorm1d(hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, 2 * latent),
            )

        def forward(self, z: Any) -> Any:
            return self.encoder(z)[:, :latent]

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bottleneck = torch.nn.Linear(embed_dim, n_concepts, bias=False)
            self.register_buffer("mean", torch.randn(n_concepts) * 0.01)
            self.register_buffer("std", torch.rand(n_concepts) * 0.05 + 0.05)
            self.latent = LatentMean()  # the latent graph of a bundle is this submodule

        def forward(self, features: Any) -> tuple[Any, Any]:
            z = (self.bottleneck(features) - self.mean) / self.std
            return z, self.latent(z)

    return Head().eval()


def open_clip_parts(
    arch: str = "ViT-B-32", *, with_text: bool = False, n_concepts: int = 200, model: Any = None
) -> Any:
    """ExportParts for an open_clip model (random weights unless ``model`` is given)."""
    import open_clip
    import torch

    from ceir_onnx.export import ExportParts

    weights = "random" if model is None else "given"
    if model is None:
        torch.manual_seed(0)
        model = open_clip.create_model(arch, pretrained=None)
    model = model.eval()
    visual = model.visual
    size = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]

    class Image(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, pixels: Any) -> Any:
            return self.m.encode_image(pixels)

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, tokens: Any) -> Any:
            return self.m.encode_text(tokens)

    dim = int(model.text_projection.shape[1]) if hasattr(model, "text_projection") else 512
    concepts = [f"concept {i}" for i in range(n_concepts)]
    emb = np.random.default_rng(0).normal(size=(n_concepts, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return ExportParts(
        image_module=Image().eval(),
        head_module=ceir_head(dim, n_concepts),
        concepts=concepts,
        concept_text_embeddings=emb,
        preprocess={"image_size": int(size), "resize": "shortest", "crop": "center", "interpolation": "bicubic",
                    "mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)},
        tokenizer_info={"kind": "clip-bpe", "context_length": 77, "vocab_file": open_clip.tokenizer.default_bpe()},
        text_module=Text().eval() if with_text else None,
        model_info={"backbone": {"name": f"open-clip:{arch}", "weights": weights}},
    )
