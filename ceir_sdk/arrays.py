"""The one check for the arrays that cross the SDK's boundaries: a finite (N, D) float32 matrix."""

from __future__ import annotations

from typing import Any

import numpy as np

from ceir_sdk.errors import BadInputError


def float32_matrix(x: Any, what: str, *, dim: int | None = None, mismatch: str = "", allow_row: bool = False,
                   ) -> np.ndarray:
    """``x`` as a contiguous float32 (N, D) array, or a BadInputError naming ``what``.

    ``dim``: the width it must have; ``mismatch`` then says why and what to do, e.g. "the index
    holds {want}-d vectors; encode items and queries with the model that built the index"
    (``{got}`` and ``{want}`` are filled in). ``allow_row``: a 1-D array is one row.
    """
    a = np.asarray(x, dtype=np.float32)
    if allow_row and a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise BadInputError(f"{what} must be a 2-D array (N, D); got shape {a.shape}")
    if dim is not None and a.shape[1] != dim:
        why = mismatch.format(got=a.shape[1], want=dim) if mismatch else f"expected {dim}"
        raise BadInputError(f"{what} have dimension {a.shape[1]}: {why}")
    if not np.isfinite(a).all():
        raise BadInputError(f"{what} contain NaN or infinite values; clean the input first")
    return np.ascontiguousarray(a)
