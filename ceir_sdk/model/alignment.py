"""Is the text encoder aligned with the image encoder? A label-free check made at fit.

The concept targets are cosines between image features and concept text embeddings, so they mean
what the concepts say only when both encoders share one space (CLIP-style training). Nothing else
in fitting notices when they do not: a text encoder unrelated to the image encoder (a hashed bag
of words beside an ImageNet CNN) still gives scores that vary from image to image, the projection
still reproduces them, and clusters and explanations still look plausible.

The measure: how much the images vary along the concepts' own text directions, against how much
they vary along a random direction. Each concept's embedding, less the mean of all concepts'
(what is common to every text, such as CLIP's modality offset), is a direction in the image
space; an aligned encoder points those directions where the images differ (colour, shape,
scene), a text encoder that knows nothing of the images points them at random. On the drawn
world, open-clip:ceir-world gives 8 to 9 times the random variance; a hashed bag of words beside
the same image encoder 1.03 to 1.08, random vectors 1.00.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: below this ratio the fit warns: random text directions give 1.00 (+- a few hundredths), a hashed bag
#: of words 1.02 to 1.08; synthetic aligned features (sums of 5 of 24 concept embeddings in 32
#: dimensions, which nearly span the space) 1.66, the world CLIP 8 to 9
MIN_ALIGNMENT = 1.25
#: measured only when the concepts' centred directions span at most this share of the feature
#: dimensions: when they span (nearly) all of them, a random direction is itself a mix of concept
#: directions and the ratio is about 1 for any encoder (an 11-colour histogram backbone with 22
#: colour concepts is aligned word for word and gives 0.95)
MAX_SPAN_SHARE = 0.75
#: fewer validation rows than this and the measure uses every row (it involves no labels and
#: selects nothing, so the training rows are as good for it)
MIN_ROWS = 32


@dataclass
class TextAlignment:
    #: variance of the images along the concepts' centred text directions / along a random direction
    ratio: float
    threshold: float
    rows: int
    split: str  # "validation" or "all" (too few validation rows)
    aligned: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def variance_ratio(features: np.ndarray, text_embeddings: np.ndarray) -> float | None:
    """Mean variance of the (L2-normalised) images along each concept's centred text direction,
    over the variance along a random direction (the mean per-dimension variance). None when
    it cannot be measured: fewer than 3 concepts or 3 images, all concepts alike, or concepts
    spanning more than MAX_SPAN_SHARE of the dimensions."""
    x = np.asarray(features, dtype=np.float64)
    t = np.asarray(text_embeddings, dtype=np.float64)
    if len(x) < 3 or len(t) < 3 or x.shape[1] != t.shape[1]:
        return None
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    xc = x - x.mean(axis=0)
    tc = t - t.mean(axis=0)
    norms = np.linalg.norm(tc, axis=1)
    keep = norms > 1e-6  # a concept equal to the mean of all has no direction of its own
    if keep.sum() < 2:
        return None
    directions = tc[keep] / norms[keep, None]
    singular = np.linalg.svd(directions, compute_uv=False)
    if int((singular > singular[0] * 1e-3).sum()) > MAX_SPAN_SHARE * x.shape[1]:
        return None
    random_direction = float((xc**2).sum(axis=1).mean()) / x.shape[1]
    if random_direction <= 0:
        return None
    along_concepts = float(((xc @ directions.T) ** 2).mean())
    return along_concepts / random_direction


def text_alignment(val_features: np.ndarray, all_features: np.ndarray,
                   text_embeddings: np.ndarray) -> TextAlignment | None:
    """The measure on the validation rows (or on all rows when there are fewer than MIN_ROWS)."""
    split, rows = ("validation", val_features) if len(val_features) >= MIN_ROWS else ("all", all_features)
    ratio = variance_ratio(rows, text_embeddings)
    if ratio is None:
        return None
    return TextAlignment(ratio=round(ratio, 4), threshold=MIN_ALIGNMENT, rows=len(rows), split=split,
                         aligned=ratio >= MIN_ALIGNMENT)


def warning_text(result: TextAlignment, encoder: str) -> str:
    return (
        f"the text encoder does not look aligned with the image encoder ({encoder}): along the concepts' text "
        f"directions the {result.split} images vary {result.ratio:.2f} times as much as along a random direction "
        f"(an aligned, CLIP-style pair gives several times more; below {result.threshold} the concept scores are "
        "close to random projections of the image features). Concept activations, clusters and explanations "
        "would not mean what the concepts say. When the backbone's text encoder was not trained with its image "
        "encoder, give a separate CLIP-style concept model whose scores the projection learns: "
        "CEIRModel(..., concept_model='open-clip:...') or `ceir fit --concept-model NAME`")
