"""The concept model: the CLIP whose image-text similarities are the concept targets P.

CEIR and Label-free CBM teach the backbone *another* model's concept scores: CIFAR-10's
ViT-L/14 backbone learns the scores of a separate CLIP ViT-B/16, and a ResNet (no text tower)
learns a CLIP's. ``CEIRModel(backbone, concept_model=...)`` is that configuration: the concept
model encodes the training images and the concept phrases (P = its normalised image features x
its normalised text embeddings, the concept as is), and the bias-free projection from the
backbone's features is trained towards P from a random start. Only the projection is needed
to embed images afterwards; texts go through the concept model's text tower
(:func:`encode_texts`), scored by its own similarity (``ceir_sdk.concepts.text_scale.concept_scores``).

Without a concept model, or with the backbone itself, P comes from the backbone's own text
tower: P is then linear in the features, the text-embedding start reproduces it exactly and the
projection *is* the zero-shot scores (the bottleneck report says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ceir_sdk.errors import BadInputError

if TYPE_CHECKING:
    from ceir_sdk.model.ceir import CEIRModel

#: ModelConfig.concept_targets values: where the bottleneck's targets P came from
FROM_BACKBONE = "backbone"
FROM_CONCEPT_MODEL = "concept model"

# Spec keys that name the software around a model, not the model (as ceir._check_same_backbone).
_ENVIRONMENT_KEY_SUFFIXES = ("_version", "device")


def _model_keys(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if not k.endswith(_ENVIRONMENT_KEY_SUFFIXES)}


def same_model(a: Any, b: Any) -> bool:
    """Whether two Backbone objects are the same model (the same object, or equal specs)."""
    if a is b:
        return True
    try:
        return bool(_model_keys(dict(a.spec())) == _model_keys(dict(b.spec())))
    except Exception:  # a spec() that fails cannot prove sameness; treat the models as different
        return False


def resolve(model: CEIRModel) -> Any:
    """The concept model as a Backbone object, built from its name on first use; None when the
    targets come from the backbone (no concept model given, or the backbone itself)."""
    if model._concept_model is not None:
        return model._concept_model
    spec = model._concept_model_spec
    if spec is None:
        return None
    from ceir_sdk.errors import UnknownNameError
    from ceir_sdk.plugins import get_backbone

    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise BadInputError(f"the concept model's spec has no \"name\" ({spec!r}); pass concept_model= an object")
    try:
        concept_model = get_backbone(name, **model.concept_model_options)
    except UnknownNameError as exc:
        raise BadInputError(
            f"the concept model {name!r} is not provided by any installed plugin "
            f"({exc.args[0] if exc.args else exc}); install the plugin that registers it "
            "(`ceir plugins` lists what is installed)") from None
    fitted = model._fitted_concept_model_spec
    if fitted is not None and _model_keys(fitted) != _model_keys(dict(concept_model.spec())):
        raise BadInputError(
            f"the concept model {name!r} resolved with options {model.concept_model_options!r} is not the one "
            "this model was fitted with (its spec differs); its text embeddings would not match the saved "
            "concept embeddings. Pass the options it was fitted with, or concept_model= an object")
    model._concept_model = concept_model
    return concept_model


def for_fit(model: CEIRModel) -> Any:
    """The concept model to take targets from, or None for the backbone's own text tower.

    A concept model that is the backbone (the same name and options, or the same spec) is
    recorded as such: its targets are the zero-shot scores, which the report says."""
    spec = model._concept_model_spec
    if model._concept_model is None and spec is None:
        return None
    backbone_spec = model._backbone_spec or {}
    if (model._concept_model is None and spec is not None and spec.get("name") == backbone_spec.get("name")
            and model.concept_model_options == model.backbone_options):
        concept_model = None
    else:
        concept_model = resolve(model)
        if concept_model is not None and model._backbone_spec is not None and same_model(model.backbone,
                                                                                         concept_model):
            concept_model = None
    if concept_model is None:
        model._concept_model, model._concept_model_spec = None, None
        model.concept_model_is_backbone = True
    return concept_model


def concept_features(model: CEIRModel, images: Any, *, batch_size: int, progress: bool) -> np.ndarray | None:
    """The concept model's image features of the training images (None without a separate one)."""
    concept_model = for_fit(model)
    if concept_model is None:
        return None
    from ceir_sdk.model.ceir import backbone_features

    return backbone_features(concept_model, images, batch_size=batch_size, progress=progress)


def text_encoder(model: CEIRModel) -> Any:
    """The model whose text tower embeds the concept phrases and text queries."""
    if model.concept_targets == FROM_CONCEPT_MODEL:
        concept_model = resolve(model)
        if concept_model is None:
            raise BadInputError(
                "this model's concept targets came from given concept-model features (fit_features("
                "concept_features=...)) without a concept model, so it cannot embed texts; fit with "
                "concept_model= a CLIP, or pass concept_embeddings= when fitting")
        return concept_model
    return model.backbone


def encode_texts(model: CEIRModel, texts: Sequence[str]) -> np.ndarray:
    """Text queries of a model with a separate concept model -> concepts on the text scale (N, C).

    The text is scored by the concept model's own similarity with each kept concept's text
    embedding (the way its targets were made), then standardised with the statistics of the
    concept phrases' own scores (``ceir_sdk.concepts.text_scale``; CLIP's modality gap)."""
    from ceir_sdk.concepts.text_scale import concept_scores, standardise_text_activations, text_statistics

    concept_text = model.concept_text_embeddings()
    features = np.asarray(text_encoder(model).encode_texts(list(texts)), dtype=np.float32)
    if features.ndim != 2 or features.shape[1] != concept_text.shape[1]:
        raise BadInputError(
            f"the concept model's text features have shape {features.shape} but the saved concept embeddings "
            f"are {concept_text.shape[1]}-dimensional; the concept model is not the one the model was fitted with")
    if model._text_stats is None:
        model._text_stats = text_statistics(concept_scores(concept_text, concept_text))
    return standardise_text_activations(concept_scores(features, concept_text), *model._text_stats)
