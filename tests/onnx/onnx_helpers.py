"""A tiny real open_clip model plus a hand-built CEIR head, for export tests."""

from __future__ import annotations

from typing import Any

import numpy as np

CONCEPTS = [f"concept {i}" for i in range(6)] + ["striped fur", "a runway", "feathers", "green grass"]


# Put in front of a subprocess script: any import of torch, open_clip, torchvision or the
# training code (ceir_sdk.model) then raises, as on a deployment machine without them.
TORCH_BLOCKER = """import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "open_clip", "torchvision") or name == "ceir_sdk.model":
            raise ImportError(f"blocked import of {name} (the runtime must not need it)")
        return None
sys.meta_path.insert(0, Block())
"""


def tiny_parts(seed: int = 0, image_size: int = 32) -> tuple[Any, Any]:
    """(ExportParts, the open_clip model) for a 2-layer ViT / text transformer with random weights."""
    import open_clip
    import torch
    from ceir_onnx.export import ExportParts
    from open_clip.model import CLIP

    torch.manual_seed(seed)
    clip = CLIP(
        embed_dim=32,
        vision_cfg={"image_size": image_size, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32},
        text_cfg={"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    ).eval()

    class Image(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.clip.encode_image(pixels)

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.clip.encode_text(tokens)

    n_c, hidden, latent = len(CONCEPTS), 16, 8

    class LatentMean(torch.nn.Module):
        """A VAE encoder's posterior mean: z-scored concepts (B, C) -> (B, L)."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = torch.nn.Sequential(
                torch.nn.Linear(n_c, hidden),
                torch.nn.BatchNorm1d(hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, 2 * latent),
            )
            bn = self.encoder[1]
            bn.running_mean.normal_()  # type: ignore[operator]
            bn.running_var.uniform_(0.5, 2.0)  # type: ignore[operator]

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.encoder(z)[:, :latent]

    class Head(torch.nn.Module):
        """Bottleneck (bias-free linear) -> z-score -> VAE encoder mean, as CEIR does."""

        def __init__(self) -> None:
            super().__init__()
            self.bottleneck = torch.nn.Linear(32, n_c, bias=False)
            self.register_buffer("mean", torch.randn(n_c) * 0.1)
            self.register_buffer("std", torch.rand(n_c) + 0.5)
            self.latent = LatentMean()

        def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            z = (self.bottleneck(features) - self.mean) / self.std
            return z, self.latent(z)

    with torch.no_grad():
        text_emb = clip.encode_text(open_clip.tokenize(CONCEPTS))
        text_emb = (text_emb / text_emb.norm(dim=-1, keepdim=True)).numpy().astype(np.float32)
    parts = ExportParts(
        image_module=Image().eval(),
        head_module=Head().eval(),
        concepts=CONCEPTS,
        concept_text_embeddings=text_emb,
        preprocess={
            "image_size": image_size,
            "resize": "shortest",
            "crop": "center",
            "interpolation": "bicubic",
            "mean": list(open_clip.OPENAI_DATASET_MEAN),
            "std": list(open_clip.OPENAI_DATASET_STD),
        },
        tokenizer_info={
            "kind": "clip-bpe",
            "context_length": 77,
            "vocab_file": open_clip.tokenizer.default_bpe(),
        },
        text_module=Text().eval(),
        model_info={"backbone": {"name": "open-clip:tiny-test"}, "latent_model": "hand-built"},
    )
    return parts, clip


def photo_like(n: int, seed: int = 1) -> list[np.ndarray]:
    from ceir_onnx.export import synthetic_images

    return synthetic_images(n, seed=seed)
