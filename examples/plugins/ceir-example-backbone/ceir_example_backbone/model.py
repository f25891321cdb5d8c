"""The colour-histogram backbone: an image's features are how much of each named colour it
shows; a text's features are which of those colours it names. Both live in one space (feature i
is colour i), which is what ceir needs of a backbone's image and text encoders."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from ceir_sdk import BackboneBase

#: One feature per named colour (RGB, 0..1).
PALETTE = {
    "red": (0.86, 0.10, 0.10), "orange": (1.00, 0.52, 0.05), "yellow": (0.97, 0.88, 0.12),
    "green": (0.12, 0.70, 0.18), "blue": (0.12, 0.30, 0.92), "purple": (0.55, 0.15, 0.72),
    "pink": (1.00, 0.55, 0.78), "brown": (0.50, 0.29, 0.10), "black": (0.07, 0.07, 0.07),
    "white": (0.96, 0.96, 0.96), "gray": (0.50, 0.50, 0.50),
}
SYNONYMS = {"grey": "gray", "golden": "yellow", "violet": "purple", "sky": "blue", "grass": "green"}
SIZE = 32


class ColourHistogram(torch.nn.Module):
    """pixels (B, 3, SIZE, SIZE) in [0, 1] -> soft colour histogram (B, len(PALETTE))."""

    def __init__(self, sharpness: float) -> None:
        super().__init__()
        centres = torch.tensor(list(PALETTE.values()))
        # softmax over colours of -sharpness * |pixel - centre|^2; the |pixel|^2 term is the same
        # for every colour and cancels, leaving one 1x1 convolution
        self.logits = torch.nn.Conv2d(3, len(PALETTE), kernel_size=1)
        self.logits.weight = torch.nn.Parameter(2 * sharpness * centres[:, :, None, None])
        self.logits.bias = torch.nn.Parameter(-sharpness * (centres**2).sum(dim=1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(pixels), dim=1).mean(dim=(2, 3))


class ColourBackbone(BackboneBase):
    name = "example-colour"
    embed_dim = len(PALETTE)

    def __init__(self, spec: str | None = None, *, sharpness: float = 30.0, **options: Any) -> None:
        super().__init__(**options)  # batch_size, cache, on_error, max_pixels, ... (BackboneBase)
        self.sharpness = float(sharpness)
        self.module = ColourHistogram(self.sharpness).eval()

    def preprocess_config(self) -> dict[str, Any]:
        # What transform() does, as data: the ONNX bundle replays it, and export checks it does.
        return {"image_size": SIZE, "resize": "squash", "crop": "none", "interpolation": "bilinear",
                "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}

    def transform(self, image: Image.Image) -> np.ndarray:
        """A decoded RGB image -> float32 (3, SIZE, SIZE) in [0, 1]."""
        small = image.resize((SIZE, SIZE), Image.Resampling.BILINEAR)
        return np.asarray(small, np.float32).transpose(2, 0, 1) / 255.0

    def encode_batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return self.module(torch.from_numpy(np.stack(inputs))).numpy()

    def encode_text_batch(self, texts: list[str]) -> np.ndarray:
        out = np.full((len(texts), self.embed_dim), 0.01, np.float32)  # never a zero vector
        names = list(PALETTE)
        for i, text in enumerate(texts):
            for word in text.lower().replace(",", " ").split():
                word = SYNONYMS.get(word, word)
                if word in PALETTE:
                    out[i, names.index(word)] += 1.0
        return out

    def torch_modules(self) -> dict[str, Any]:
        return {"image": self.module}  # no "text": its tokenizer is not CLIP's (image-only bundle)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "palette": list(PALETTE), "sharpness": self.sharpness}
