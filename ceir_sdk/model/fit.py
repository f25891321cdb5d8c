"""Fitting a CEIRModel: concept bottleneck on the training features, then the latent model,
then the presence thresholds; a validation split carved from the training rows makes every
model-selection decision (no evaluation data enters)."""

from __future__ import annotations

import datetime as _dt
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ceir_sdk.errors import BadInputError, PluginError
from ceir_sdk.model.presence import fit_presence_thresholds

if TYPE_CHECKING:
    from ceir_sdk.model.ceir import CEIRModel

log = logging.getLogger("ceir_sdk.model")


def fit_features(model: CEIRModel, features: np.ndarray, concepts: Any, *, concept_embeddings: np.ndarray | None,
                 progress: bool, label_information: dict[str, Any] | None,
                 data_description: str | None, concept_features: np.ndarray | None = None) -> CEIRModel:
    """See ``CEIRModel.fit_features``."""
    from ceir_sdk.model import concept_model as cm
    from ceir_sdk.model.ceir import _features, clean_concepts

    phrases = clean_concepts(concepts)
    # Targets from a separate concept model: named on the model, or given as its features.
    separate = cm.for_fit(model) is not None or concept_features is not None
    if separate and concept_features is None:
        raise BadInputError(
            "this model takes its concept targets from a separate concept model, which must encode the same "
            "training images: give concept_features= (the concept model's image features, row for row), or "
            "call fit(images, ...) so both models encode them")
    dim = None
    if model._backbone is not None or model._backbone_spec is not None:
        dim = int(model.backbone.embed_dim)
    x = _features(features, dim)
    targets = None
    if separate:
        targets = _features(concept_features, None, "concept model features")
        if len(targets) != len(x):
            raise BadInputError(
                f"concept_features have {len(targets)} rows but features {len(x)}; both must encode the same "
                "training images in the same order")
    model.concept_targets = cm.FROM_CONCEPT_MODEL if separate else cm.FROM_BACKBONE
    t0 = time.perf_counter()
    if concept_embeddings is None:
        text = model._embed_concepts(phrases)
    else:
        text = np.asarray(concept_embeddings, dtype=np.float32)
    width = targets.shape[1] if targets is not None else x.shape[1]
    if text.ndim == 2 and text.shape[0] == len(phrases) and text.shape[1] != width and not separate:
        raise BadInputError(
            f"concept embeddings are {text.shape[1]}-dimensional but the backbone's features {width}-dimensional: "
            "without a concept model the targets are the backbone's own zero-shot scores, in its own space; for "
            "targets from another model give concept_model= (or its image features as concept_features=)")
    if text.shape != (len(phrases), width):
        raise BadInputError(
            f"concept embeddings have shape {text.shape}; expected ({len(phrases)}, {width}) "
            f"(the {'concept model' if separate else 'backbone'}'s text width)"
        )
    text_s = time.perf_counter() - t0
    train_idx, val_idx = model.split_indices(len(x))
    x_tr, x_val = x[train_idx], x[val_idx]
    alignment = _check_text_alignment(model, targets if targets is not None else x, val_idx, text, separate)

    t0 = time.perf_counter()
    model.bottleneck.fit(x_tr, x_val, text, phrases, seed=model.seed, progress=progress,
                         targets=None if targets is None else targets[train_idx],
                         val_targets=None if targets is None else targets[val_idx])
    bottleneck_s = time.perf_counter() - t0
    assert model.bottleneck.kept_index is not None
    kept_text = text[model.bottleneck.kept_index]
    model._text_stats = None
    model._text_embeddings = (
        kept_text / np.maximum(np.linalg.norm(kept_text, axis=1, keepdims=True), 1e-12)
    ).astype(np.float32)

    from ceir_sdk.plugins import get_latent_model

    t0 = time.perf_counter()
    z_tr = model.bottleneck.transform(x_tr)
    latent = get_latent_model(model.latent_name, **model.latent_options)
    latent.fit(z_tr, x_val=model.bottleneck.transform(x_val), seed=model.seed, progress=progress)
    _check_latent_model(model.latent_name, latent, z_tr[:8])
    latent_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.presence_thresholds = fit_presence_thresholds(z_tr, model.concepts, seed=model.seed)
    presence_s = time.perf_counter() - t0
    model.latent_model = latent
    model._head = None
    model.label_information = dict(label_information or {
        "class_names_in_prompts": None, "class_names_in_concepts": None,
        "note": "not stated by the caller",
    })
    model.label_information["labels_used_in_fit"] = False
    model.provenance = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "data": data_description,
        "n_train": len(train_idx),
        "n_validation": len(val_idx),
        "val_fraction": model.val_fraction,
        "seed": model.seed,
        "concepts_given": len(phrases),
        "bottleneck": model.bottleneck.report.as_dict(),
        "concept_model": _concept_model_note(model),
        "text_alignment": None if alignment is None else alignment.as_dict(),
        "latent_history": getattr(latent, "history", {}),
        "timings_s": {"concept_text": text_s, "bottleneck": bottleneck_s, "latent": latent_s,
                      "presence": presence_s},
    }
    return model


def _check_text_alignment(model: CEIRModel, image_features: np.ndarray, val_idx: np.ndarray, text: np.ndarray,
                          separate: bool) -> Any:
    """Warn when the concept scores cannot mean what the concepts say: the text encoder that
    embedded the concepts is not aligned with the image encoder whose features they score
    (ceir_sdk.model.alignment). Returns the measure for the provenance (None: not measurable)."""
    from ceir_sdk.model.alignment import text_alignment, warning_text

    result = text_alignment(image_features[val_idx], image_features, text)
    if result is not None and not result.aligned:
        if separate:
            spec = model._concept_model.spec() if model._concept_model is not None else model._concept_model_spec
            encoder = f"concept model {(spec or {}).get('name', '?')!r}"
        else:
            encoder = f"backbone {model.backbone.spec().get('name', getattr(model.backbone, 'name', '?'))!r}" \
                if (model._backbone is not None or model._backbone_spec is not None) else "the given features"
        log.warning("%s", warning_text(result, encoder))
    return result


def _concept_model_note(model: CEIRModel) -> dict[str, Any]:
    """Which model gave the concept targets, in the provenance (and so in config.json)."""
    from ceir_sdk.model import concept_model as cm

    separate = model.concept_targets == cm.FROM_CONCEPT_MODEL
    spec = None
    if separate and (model._concept_model is not None or model._concept_model_spec is not None):
        spec = (model._concept_model.spec() if model._concept_model is not None else model._concept_model_spec)
    return {"targets": model.concept_targets, "spec": spec,
            "same_as_backbone": bool(getattr(model, "concept_model_is_backbone", False)),
            "note": model.bottleneck.report.note or None}


def _check_latent_model(name: str, latent: Any, sample: np.ndarray) -> None:
    """Images go through the latent's torch encoder_module, texts through encode(): they must agree.

    Checked once after fitting, so a latent plugin that breaks its contract is named at fit time
    instead of giving images and texts latents in different spaces later.
    """
    import torch

    what = f"latent model {name!r}"
    dim = int(latent.latent_dim)
    try:
        module = latent.encoder_module()
    except NotImplementedError:
        raise PluginError(
            f"{what} has no encoder_module(): CEIRModel runs images through it (a torch module, concept z -> "
            "latent mean), and ONNX export traces it. Implement it in the latent plugin") from None
    with torch.no_grad():
        from_module = module(torch.from_numpy(np.ascontiguousarray(sample))).numpy()
    from_encode = np.asarray(latent.encode(sample), np.float32)
    for how, out in (("encoder_module()", from_module), ("encode()", from_encode)):
        if out.shape != (len(sample), dim):
            raise PluginError(f"{what}: {how} gives shape {out.shape} for {len(sample)} rows, but latent_dim is "
                              f"{dim}; the latent plugin breaks its contract")
    if not np.allclose(from_module, from_encode, rtol=1e-3, atol=1e-4):
        gap = float(np.abs(from_module - from_encode).max())
        raise PluginError(f"{what}: encode() and encoder_module() disagree (max difference {gap:.3g}); "
                          "images and text queries would land in different spaces")
