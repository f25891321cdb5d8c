"""Texts and concept vectors through a bundle's text, head and latent graphs (no images here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ceir_onnx.runtime.sessions import Sessions
from ceir_sdk.concepts.text_scale import concept_scores, standardise_text_activations, text_statistics
from ceir_sdk.errors import BadInputError

#: rows per run of the small head and latent graphs (they are cheap; this bounds memory)
SMALL_GRAPH_BATCH = 8192


class TextPart:
    """Text features, the concept head and the latent encoder of one bundle."""

    def __init__(self, sessions: Sessions, concepts: list[str], concept_text_embeddings: np.ndarray) -> None:
        self.sessions, self.concepts = sessions, concepts
        self.concept_text_embeddings = concept_text_embeddings
        self._text_stats: tuple[np.ndarray, np.ndarray] | None = None
        # "concept_model": the text graph is a separate concept model's text tower and texts are
        # scored by cosine with the concepts (ceir_onnx.export.TEXT_SPACES); bundles before: "backbone".
        self.text_space = str(sessions.manifest.get("text_space", "backbone"))

    @property
    def texts_in_image_space(self) -> bool:
        """Whether text features can be compared with image features (the same model's towers)."""
        return self.text_space == "backbone"

    def embed_texts(self, texts: str | Sequence[str], batch_size: int) -> np.ndarray:
        """Unnormalised text features (N, D) of the bundle's text graph (the backbone's, or the
        concept model's when ``text_space`` is "concept_model")."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise BadInputError("give one or more texts (strings); got " + (repr(texts[:3]) if texts else "none"))
        tokens = self.sessions.tokenizer(texts)
        out = [self.sessions.text.run(None, {"tokens": tokens[i : i + batch_size]})[0]
               for i in range(0, len(tokens), batch_size)]
        return np.concatenate(out).astype(np.float32)

    def encode_features(self, features: np.ndarray, *, output: str = "both") -> Any:
        """Backbone features (N, D) through the concept head, like ``CEIRModel.encode_features``:
        "latent" (N, L), "concepts" (N, C) or "both" (concepts, latent)."""
        if output not in ("latent", "concepts", "both"):
            raise BadInputError(f"output must be 'latent', 'concepts' or 'both'; got {output!r}")
        x = np.ascontiguousarray(features, dtype=np.float32)
        dim = int(self.sessions.manifest["embed_dim"])
        if x.ndim != 2 or x.shape[1] != dim or len(x) == 0:
            raise BadInputError(f"features must be a non-empty (N, {dim}) float array; got shape {x.shape}")
        session = self.sessions.graph("head", "text queries and features")
        outs = [session.run(None, {"features": x[i : i + SMALL_GRAPH_BATCH]})
                for i in range(0, len(x), SMALL_GRAPH_BATCH)]
        concepts = np.concatenate([o[0] for o in outs]).astype(np.float32)
        latent = np.concatenate([o[1] for o in outs]).astype(np.float32)
        if output == "latent":
            return latent
        if output == "concepts":
            return concepts
        return concepts, latent

    def encode_texts(self, texts: str | Sequence[str], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(concept z-scores (N, C), latents (N, L)) of texts, as the torch model computes them:
        the text graph, the concept head, re-standardisation with text statistics (CLIP's
        modality gap, see ``ceir_sdk.concepts.text_scale``), then the latent graph."""
        features = self.embed_texts(texts, batch_size)
        if self.text_space == "concept_model":  # as ceir_sdk.model.concept_model.encode_texts
            raw = concept_scores(features, self.concept_text_embeddings)
        else:
            raw = self.encode_features(features, output="concepts")
        concepts = standardise_text_activations(raw, *self.text_statistics())
        return concepts, self.concept_vector(concepts)

    def text_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        if self._text_stats is None:
            if self.text_space == "concept_model":
                reference = concept_scores(self.concept_text_embeddings, self.concept_text_embeddings)
            else:
                reference = self.encode_features(self.concept_text_embeddings, output="concepts")
            self._text_stats = text_statistics(reference)
        return self._text_stats

    def concept_vector(self, activations: np.ndarray) -> np.ndarray:
        """Latents (N, L) of z-scored concept activations (N, C) (or one row (C,)): the latent
        model's encoder alone, used to search with edited concepts."""
        a = np.asarray(activations, dtype=np.float32)
        a = a[None, :] if a.ndim == 1 else a
        if a.ndim != 2 or a.shape[1] != len(self.concepts) or len(a) == 0:
            raise BadInputError(
                f"activations must be (N, {len(self.concepts)}) for this bundle's concepts; got shape {a.shape}"
            )
        if not np.isfinite(a).all():
            raise BadInputError("activations contain NaN or infinite values")
        a = np.ascontiguousarray(a)
        session = self.sessions.graph("latent", "concept edits (concepts to latent)")
        outs = [session.run(None, {"concepts": a[i : i + SMALL_GRAPH_BATCH]})[0]
                for i in range(0, len(a), SMALL_GRAPH_BATCH)]
        return np.concatenate(outs).astype(np.float32)
