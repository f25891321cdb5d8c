"""Text queries through an image-fitted concept head: z-scores on the text side of CLIP's gap.

A concept head z-scores activations with the mean and spread of *image* features. CLIP's text
embeddings sit in their own region of the space (the modality gap), so a text run through the
same z-scoring lands far above every image on every concept (z of 3 to 48 against -4 to 3 for
images on world10): every concept looks present and text search returned chance (precision@10
0.10 for ten class-name queries). Re-standardising a text's activations with the statistics of
texts (the model's own concept phrases, which every model and bundle carries) puts text and
images on one scale: precision@10 0.60 through the latent, 0.80 in concept space, same setup.
"""

from __future__ import annotations

import numpy as np

# Below this spread a concept barely varies over the reference texts; dividing by it would
# blow one concept up, so its z-score is measured against this floor instead.
MIN_TEXT_SPREAD = 1e-3


def text_statistics(reference_activations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, spread) per concept of the image-z-scored activations of reference texts (R, C)."""
    acts = np.asarray(reference_activations, dtype=np.float64)
    if acts.ndim != 2 or len(acts) < 2:
        raise ValueError(f"text statistics need at least 2 reference texts, got shape {acts.shape}")
    spread = np.maximum(acts.std(axis=0), MIN_TEXT_SPREAD)
    return acts.mean(axis=0).astype(np.float32), spread.astype(np.float32)


def standardise_text_activations(activations: np.ndarray, mean: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Image-z-scored activations of query texts (N, C) -> z-scores on the text scale."""
    return ((np.asarray(activations, dtype=np.float32) - mean) / spread).astype(np.float32)


def concept_scores(text_features: np.ndarray, concept_text_embeddings: np.ndarray) -> np.ndarray:
    """Cosine of each text (N, D) with each concept's text embedding (C, D), (N, C) float32.

    The text path of a model whose concept targets came from a separate concept model: its
    projection maps the *backbone's image* features, so a text (in the concept model's space)
    is scored on the concepts the way the targets were, by the concept model's own similarity;
    :func:`text_statistics` of the concepts' own scores then puts it on the text scale. Shared
    by ``CEIRModel.encode_texts`` and the ONNX runtime so the two cannot drift apart.
    """
    def unit(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float32)
        return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)

    return (unit(text_features) @ unit(concept_text_embeddings).T).astype(np.float32)
