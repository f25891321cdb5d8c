"""CEIRModel: the public API that turns images into concept-readable representations."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ceir_sdk.errors import BadInputError, IncompatibleFileError, PluginError, UnknownNameError
from ceir_sdk.model.bottleneck import BottleneckConfig, ConceptBottleneck, ConceptHead
from ceir_sdk.model.cluster import DEFAULT_RESTARTS, ClusterResult, kmeans, name_clusters
from ceir_sdk.model.explain import Explanation, integrated_gradients
from ceir_sdk.model.persist import _install_hint, _jsonable

MIN_TRAIN = 10
#: CEIR's open-world extraction counts a concept when |activation x IG attribution| > 0.05
REFERENCE_EXTRACTION_THRESHOLD = 0.05

Output = str  # "latent" | "concepts" | "both"


def _check_templates(template: Any) -> str | list[str]:
    """One template string, or a non-empty list of them; each must hold the '{}' placeholder."""
    templates = [template] if isinstance(template, str) else list(template) if template is not None else []
    if not templates or not all(isinstance(t, str) for t in templates):
        raise BadInputError(f"concept_template must be a string or a list of strings, got {template!r}")
    for t in templates:
        if "{}" not in t:
            raise BadInputError(f"concept_template must contain '{{}}', got {t!r}")
    return templates[0] if len(templates) == 1 else templates


def clean_concepts(concepts: Any) -> list[str]:
    """Phrases from a list or a ConceptSet-like object, stripped, de-duplicated, in order."""
    if isinstance(concepts, str):
        raise BadInputError("concepts must be a list of phrases, not one string")
    for attr in ("concepts", "phrases"):
        if hasattr(concepts, attr) and not callable(getattr(concepts, attr)):
            concepts = getattr(concepts, attr)
            break
    seen: set[str] = set()
    out: list[str] = []
    for item in concepts:
        phrase = (item if isinstance(item, str) else getattr(item, "text", str(item))).strip()
        key = phrase.lower()
        if phrase and key not in seen:
            seen.add(key)
            out.append(phrase)
    if not out:
        raise BadInputError("the concept list is empty; give at least one concept phrase")
    return out


def _features(x: Any, dim: int | None, what: str = "features") -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 1 and dim is not None and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise BadInputError(f"{what} must be an (N, D) array; got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise BadInputError(
            f"{what} have {arr.shape[1]} dimensions but the backbone gives {dim}; "
            "extract them with the model's backbone"
        )
    if not np.isfinite(arr).all():
        raise BadInputError(f"{what} contain NaN or infinite values")
    return np.ascontiguousarray(arr, dtype=np.float32)


def backbone_features(backbone: Any, images: Any, **options: Any) -> np.ndarray:
    """``backbone.encode_images``, checked: a backbone that breaks its own declared width is named."""
    features = np.asarray(backbone.encode_images(images, **options))
    dim = getattr(backbone, "embed_dim", None)
    if features.ndim != 2 or (dim is not None and features.shape[1] != dim):
        raise PluginError(
            f"backbone {getattr(backbone, 'name', type(backbone).__name__)!r} returned features of shape "
            f"{features.shape} but declares embed_dim {dim}: the backbone breaks its contract (an (N, embed_dim) "
            "array); report it to the backbone plugin's authors")
    return features


class CEIRModel:
    """image -> backbone features -> concept bottleneck -> latent model.

    >>> m = CEIRModel(backbone="open-clip:ceir-world", latent="vae")
    >>> m.fit(images, concepts)                       # or m.fit_features(features, concepts)
    >>> z = m.encode(images)                          # latent, (N, L)
    >>> c, z = m.encode(images, output="both")        # z-scored concept activations and latent
    """

    def __init__(
        self,
        backbone: Any = "open-clip:ceir-world",
        *,
        latent: str = "vae",
        latent_options: dict[str, Any] | None = None,
        bottleneck: BottleneckConfig | dict[str, Any] | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        backbone_options: dict[str, Any] | None = None,
        concept_template: str | Sequence[str] = "{}",
        presence_by_parts: bool = True,
        concept_model: Any = None,
        concept_model_options: dict[str, Any] | None = None,
        projection_init: str | None = None,
    ) -> None:
        self._backbone: Any = None if isinstance(backbone, str) else backbone
        self._backbone_spec: dict[str, Any] | None = None
        if isinstance(backbone, str):
            self._backbone_spec = {"name": backbone}
        elif backbone is not None:
            self._backbone_spec = dict(backbone.spec())
        self.backbone_options = dict(backbone_options or {})
        # The spec of the backbone a loaded model was fitted with: the backbone resolved now
        # must match it, or its features would silently mean something else.
        self._fitted_backbone_spec: dict[str, Any] | None = None
        # Which installed distribution provided each component, as saved: named when it is missing.
        self._plugin_origins: dict[str, Any] = {}
        # The CLIP whose image-text scores are the concept targets (ceir_sdk.model.concept_model),
        # as a plugin name or a Backbone object; None: the backbone's own text tower, which makes
        # the projection the zero-shot scores. Only the projection is needed to embed images.
        self._concept_model: Any = None if isinstance(concept_model, str) else concept_model
        self._concept_model_spec: dict[str, Any] | None = (
            {"name": concept_model} if isinstance(concept_model, str) else None)
        self._fitted_concept_model_spec: dict[str, Any] | None = None
        self.concept_model_options = dict(concept_model_options or {})
        self.concept_model_is_backbone = False  # set by fit when the concept model given is the backbone
        self.concept_targets = "backbone"  # or "concept model"; see ModelConfig.concept_targets
        self.latent_name = latent
        self.latent_options = dict(latent_options or {})
        if isinstance(bottleneck, dict):
            bottleneck = BottleneckConfig(**bottleneck)
        if projection_init is not None:  # "random" (the reference's), "text" or "auto"; checked there
            from dataclasses import replace

            bottleneck = replace(bottleneck or BottleneckConfig(), init=projection_init)
        self.bottleneck = ConceptBottleneck(bottleneck)
        if not 0.0 < val_fraction < 1.0:
            raise BadInputError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.val_fraction = val_fraction
        self.seed = seed
        # How a concept is phrased for the text encoder. CEIR uses the concept as is ("{}");
        # a small CLIP that only ever saw captions reads "a photo of {}." far better. Several
        # templates are averaged (normalised text embeddings), as CLIP's prompt ensembles are.
        self.concept_template: str | list[str] = _check_templates(concept_template)
        self.latent_model: Any = None
        self._text_embeddings: np.ndarray | None = None  # (C, D) L2-normalised, kept concepts
        self._text_stats: tuple[np.ndarray, np.ndarray] | None = None  # text queries' scale, computed on use
        self.presence_thresholds: np.ndarray | None = None  # (C,) see ceir_sdk.model.presence
        # A description counts as present only where the concepts among its words are too
        # (ceir_sdk.concepts.generality.presence_requirements); off for concept sets where word
        # subsets do not imply each other ("sea lion" / "lion").
        self.presence_by_parts = bool(presence_by_parts)
        self._requirements: tuple[tuple[str, ...], list[list[int]]] | None = None
        self._head: Any = None
        self.label_information: dict[str, Any] = {}
        self.provenance: dict[str, Any] = {}

    # -- components -----------------------------------------------------------------
    @property
    def backbone(self) -> Any:
        """The Backbone, resolved from its name on first use (a loaded model may never need it)."""
        if self._backbone is None:
            if self._backbone_spec is None:
                raise BadInputError("this model has no backbone; pass images' features instead")
            from ceir_sdk.plugins import get_backbone

            name = self._backbone_spec.get("name")
            if not isinstance(name, str) or not name:
                raise IncompatibleFileError(
                    f"the saved backbone spec has no \"name\" ({self._backbone_spec!r}); a Backbone's spec() must "
                    "include the name it is registered under. Pass backbone= to use a backbone object directly")
            try:
                backbone = get_backbone(name, **self.backbone_options)
            except UnknownNameError as exc:
                if self._fitted_backbone_spec is None:
                    raise
                raise BadInputError(
                    f"this model was fitted with the backbone {name!r}, which no installed plugin provides "
                    f"({exc.args[0] if exc.args else exc}); {_install_hint(self._plugin_origins.get('backbone'))}, "
                    "or pass precomputed features (--features) instead of images") from None
            if self._fitted_backbone_spec is not None:
                _check_same_backbone(self._fitted_backbone_spec, backbone.spec(), self.backbone_options)
            self._backbone = backbone
        return self._backbone

    @property
    def concept_model(self) -> Any:
        """The separate concept model (a Backbone, built from its name on first use), or None when
        the concept targets are the backbone's own zero-shot scores."""
        from ceir_sdk.model import concept_model as cm

        return cm.resolve(self)

    @property
    def concepts(self) -> list[str]:
        return list(self.bottleneck.concepts)

    @property
    def is_fitted(self) -> bool:
        return self.latent_model is not None and self.bottleneck.weight is not None

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise BadInputError("the model is not fitted; call fit(), fit_features() or CEIRModel.load()")

    def concept_text_embeddings(self) -> np.ndarray:
        """(C, D) float32 L2-normalised text embeddings of the kept concepts."""
        self._require_fitted()
        assert self._text_embeddings is not None
        return self._text_embeddings.copy()

    def head_module(self) -> Any:
        """torch module: backbone features (B, D) -> (concept z (B, C), latent mean (B, L)), eval mode."""
        self._require_fitted()
        if self._head is None:
            import torch

            w, mean, std = (torch.from_numpy(a) for a in (self.bottleneck.weight, self.bottleneck.mean,
                                                            self.bottleneck.std))
            self._head = ConceptHead(w, mean, std, self.latent_model.encoder_module()).eval()
            for p in self._head.parameters():
                p.requires_grad_(False)
        return self._head

    @property
    def feature_dim(self) -> int | None:
        return None if self.bottleneck.weight is None else int(self.bottleneck.weight.shape[1])

    # -- fitting ----------------------------------------------------------------------
    def split_indices(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(train, validation) row indices carved from the n training rows with the seed."""
        if n < MIN_TRAIN:
            raise BadInputError(f"fitting needs at least {MIN_TRAIN} training images, got {n}")
        n_val = max(2, round(n * self.val_fraction))
        perm = np.random.default_rng(self.seed).permutation(n)
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])

    def fit(
        self,
        images: Any,
        concepts: Any,
        *,
        batch_size: int = 64,
        progress: bool = True,
        label_information: dict[str, Any] | None = None,
        data_description: str | None = None,
    ) -> CEIRModel:
        """Fit on training images (encoded by the backbone). Never pass evaluation images."""
        from ceir_sdk.model import concept_model as cm

        t0 = time.perf_counter()
        features = backbone_features(self.backbone, images, batch_size=batch_size, progress=progress)
        # A separate concept model encodes the same images: its scores are the projection's targets.
        concept_features = cm.concept_features(self, images, batch_size=batch_size, progress=progress)
        extract_s = time.perf_counter() - t0
        self.fit_features(
            features, concepts, progress=progress, label_information=label_information,
            data_description=data_description, concept_features=concept_features,
        )
        self.provenance["timings_s"]["extract"] = extract_s
        return self

    def fit_features(
        self,
        features: np.ndarray,
        concepts: Any,
        *,
        concept_embeddings: np.ndarray | None = None,
        progress: bool = True,
        label_information: dict[str, Any] | None = None,
        data_description: str | None = None,
        concept_features: np.ndarray | None = None,
    ) -> CEIRModel:
        """Fit on precomputed backbone features of the TRAINING images.

        A validation split is carved from these rows for every model-selection decision
        (projection early stopping, interpretability cutoff, VAE early stopping); no
        evaluation data enters. ``concept_embeddings`` (C, D) skips encoding the concept texts.
        ``concept_features`` (N, D'): a separate concept model's image features of the same images
        (needed when the model has a concept model); the projection is then trained towards their
        concept scores, and ``concept_embeddings`` are in that model's space.
        """
        from ceir_sdk.model.fit import fit_features

        return fit_features(self, features, concepts, concept_embeddings=concept_embeddings, progress=progress,
                            label_information=label_information, data_description=data_description,
                            concept_features=concept_features)

    def _embed_concepts(self, phrases: list[str]) -> np.ndarray:
        """Text embeddings of the phrases: one template as is, several averaged after normalising."""
        from ceir_sdk.model import concept_model as cm

        templates = [self.concept_template] if isinstance(self.concept_template, str) else self.concept_template
        encoder = cm.text_encoder(self)  # the concept model's text tower when it gives the targets
        embs = [np.asarray(encoder.encode_texts([t.format(p) for p in phrases]), dtype=np.float32)
                for t in templates]
        if len(embs) == 1:
            return embs[0]
        return np.mean([e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12) for e in embs], axis=0)

    # -- inference ----------------------------------------------------------------------
    def encode(
        self, images: Any, *, output: Output = "latent", batch_size: int = 64, progress: bool = True
    ) -> Any:
        """Encode images with the backbone, then the head; see :meth:`encode_features`."""
        self._require_fitted()
        features = backbone_features(self.backbone, images, batch_size=batch_size, progress=progress)
        return self.encode_features(features, output=output)

    def encode_texts(self, texts: Sequence[str], *, output: Output = "both") -> Any:
        """Text queries on the images' scale: the backbone's text embedding through the concept
        head, re-standardised with text statistics (see ``ceir_sdk.concepts.text_scale``), then the latent encoder."""
        from ceir_sdk.concepts.text_scale import standardise_text_activations

        if output not in ("latent", "concepts", "both"):
            raise BadInputError(f"output must be 'latent', 'concepts' or 'both', not {output!r}")
        self._require_fitted()
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise BadInputError("encode_texts needs at least one text")
        from ceir_sdk.model import concept_model as cm

        if self.concept_targets == cm.FROM_CONCEPT_MODEL:
            # The head maps backbone *image* features; texts go through the concept model's tower.
            concepts = cm.encode_texts(self, texts)
        else:
            raw = self.encode_features(np.asarray(self.backbone.encode_texts(texts), np.float32),
                                       output="concepts")
            concepts = standardise_text_activations(raw, *self._text_statistics())
        if output == "concepts":
            return concepts
        latent = np.asarray(self.latent_model.encode(concepts), np.float32)
        return latent if output == "latent" else (concepts, latent)

    def _text_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        from ceir_sdk.concepts.text_scale import text_statistics

        if self._text_stats is None:
            reference = self.encode_features(self.concept_text_embeddings(), output="concepts")
            self._text_stats = text_statistics(reference)
        return self._text_stats

    def encode_features(self, features: np.ndarray, *, output: Output = "latent") -> Any:
        """'latent' -> (N, L); 'concepts' -> z-scored activations (N, C); 'both' -> (concepts, latent)."""
        import torch

        if output not in ("latent", "concepts", "both"):
            raise BadInputError(f"output must be 'latent', 'concepts' or 'both', not {output!r}")
        self._require_fitted()
        x = _features(features, self.feature_dim)
        head = self.head_module()
        zs, lats = [], []
        with torch.no_grad():
            for start in range(0, len(x), 8192):
                z, lat = head(torch.from_numpy(x[start : start + 8192]))
                zs.append(z.numpy())
                lats.append(lat.numpy())
        c_dim, l_dim = len(self.concepts), int(head(torch.zeros(2, x.shape[1]))[1].shape[1])
        concepts = np.concatenate(zs) if zs else np.zeros((0, c_dim), np.float32)
        latent = np.concatenate(lats) if lats else np.zeros((0, l_dim), np.float32)
        if output == "latent":
            return latent
        if output == "concepts":
            return concepts
        return concepts, latent

    def extract_concepts(
        self, images: Any = None, *, features: np.ndarray | None = None, top_k: int | None = 5,
        progress: bool = True, rule: str = "activation", threshold: float = REFERENCE_EXTRACTION_THRESHOLD,
    ) -> list[list[tuple[str, float]]]:
        """Open-world concept extraction: the concepts of each image, for images of any class,
        including classes never seen in fitting.

        ``rule="activation"`` (default): the ``top_k`` concepts by z-scored activation.
        ``rule="reference"``: CEIR's rule, every concept whose |activation x integrated-gradients
        attribution| exceeds ``threshold`` (0.05), strongest first, with that signed product as its
        score (``top_k`` caps the list; None keeps all). The attribution is :meth:`explain`'s
        (target "self"); the product counts the input twice (docs/method.md), so it is offered
        to compare with the paper, not as the default.
        """
        if rule not in ("activation", "reference"):
            raise BadInputError(f"rule must be 'activation' or 'reference', not {rule!r}")
        if features is None:
            if images is None:
                raise BadInputError("give images or features")
            features = backbone_features(self.backbone, images, progress=progress)
        z = self.encode_features(features, output="concepts")
        if rule == "activation":
            order = np.argsort(-z, axis=1)[:, :top_k]
            return [[(self.concepts[j], float(z[i, j])) for j in row] for i, row in enumerate(order)]
        out = []
        for i, explanation in enumerate(self.explain(features=features, progress=progress)):
            score = z[i] * np.asarray(explanation.contributions, dtype=np.float32)
            keep = np.flatnonzero(np.abs(score) > threshold)
            keep = keep[np.argsort(-np.abs(score[keep]), kind="stable")][:top_k]
            out.append([(self.concepts[j], float(score[j])) for j in keep])
        return out

    def present(self, concepts_z: np.ndarray) -> np.ndarray:
        """(N, C) bool: which concepts each image shows (calibrated thresholds, z > 0 for models
        without them, and a description only with the concepts among its words)."""
        from ceir_sdk.concepts.generality import presence_mask

        return presence_mask(concepts_z, self.presence_thresholds, self.presence_requirements())

    def presence_requirements(self) -> list[list[int]] | None:
        """Per concept, the concepts that must be present with it (None when
        ``presence_by_parts`` is off); computed once per concept list."""
        if not self.presence_by_parts:
            return None
        from ceir_sdk.concepts.generality import presence_requirements

        key = tuple(self.concepts)
        if self._requirements is None or self._requirements[0] != key:
            self._requirements = (key, presence_requirements(key))
        return self._requirements[1]

    def explain(
        self, images: Any = None, *, features: np.ndarray | None = None, target: Any = "self",
        clusters: ClusterResult | None = None, tolerance: float = 0.005, progress: bool = True,
    ) -> list[Explanation]:
        """Signed concept contributions per image (integrated gradients, complete).

        target: "self" (distance of the latent from the mean image's, along its own direction),
        "cluster" (projection onto the direction of the image's cluster centroid; needs
        ``clusters``), an int latent dimension, or an (L,) / (N, L) direction array.
        See ceir_sdk.model.explain for the exact definition.
        """
        import torch

        if features is None:
            if images is None:
                raise BadInputError("give images or features to explain")
            features = backbone_features(self.backbone, images, progress=progress)
        z, lat = self.encode_features(features, output="both")
        encoder = self.head_module().latent
        with torch.no_grad():
            lat0 = encoder(torch.zeros(1, z.shape[1])).numpy()[0]
        label: str
        if isinstance(target, str) and target == "self":
            u = lat - lat0
            label = "self: |latent - latent(mean image)|"
        elif isinstance(target, str) and target == "cluster":
            if clusters is None:
                raise BadInputError("target='cluster' needs clusters=model.cluster(...)")
            from ceir_sdk.model.cluster import assign

            u = clusters.centroids[assign(lat, clusters.centroids)] - lat0
            label = "cluster: latent projected on (centroid - latent(mean image))"
        elif isinstance(target, (int, np.integer)) and not isinstance(target, bool):
            if not 0 <= int(target) < lat.shape[1]:
                raise BadInputError(f"latent dimension {target} out of range [0, {lat.shape[1]})")
            u = np.zeros_like(lat)
            u[:, int(target)] = 1.0
            label = f"latent dimension {int(target)}"
        else:
            u = np.broadcast_to(np.asarray(target, dtype=np.float32), lat.shape).copy()
            label = "latent projected on a given direction"
        norms = np.linalg.norm(u, axis=1, keepdims=True)
        u = np.where(norms > 1e-12, u / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
        attr, f_x, f_0, steps = integrated_gradients(encoder, z, u, tolerance=tolerance)
        concepts = self.concepts
        return [
            Explanation(concepts, attr[i], z[i], float(f_x[i]), float(f_0[i]), label, steps,
                        self.presence_thresholds, self.presence_requirements())
            for i in range(len(z))
        ]

    def cluster(
        self, images: Any = None, *, features: np.ndarray | None = None, k: int, restarts: int = DEFAULT_RESTARTS,
        seed: int = 0, space: str = "latent", progress: bool = True,
    ) -> ClusterResult:
        """k-means (faiss, best of ``restarts``) on the latent (or concept activations), with
        each cluster named by its dominant concepts."""
        if features is None:
            if images is None:
                raise BadInputError("give images or features to cluster")
            features = backbone_features(self.backbone, images, progress=progress)
        if space not in ("latent", "concepts"):
            raise BadInputError(f"space must be 'latent' or 'concepts', not {space!r}")
        z, lat = self.encode_features(features, output="both")
        labels, centroids, inertia = kmeans(lat if space == "latent" else z, k, restarts=restarts, seed=seed)
        names = name_clusters(labels, z, self.concepts, k, present=self.present(z))
        sizes = np.bincount(labels, minlength=k).tolist()
        return ClusterResult(labels, centroids, inertia, names, sizes)

    # -- persistence (ceir_sdk.model.persist; the config's schema and defaults: ceir_sdk.model.config) --
    def save(self, directory: str | Path) -> Path:
        """Write config.json + weights.safetensors (each file replaced atomically, config last)."""
        from ceir_sdk.model.persist import save_model

        return save_model(self, directory)

    @classmethod
    def load(cls, directory: str | Path, *, backbone: Any = None,
             backbone_options: dict[str, Any] | None = None, concept_model: Any = None) -> CEIRModel:
        """Load a saved model; refuses other formats, newer versions and altered files.

        The backbone is resolved on first use from the saved spec with the options the model
        was fitted with (``backbone_options`` adds to or overrides them, e.g. a device), and it
        must match the saved spec. ``backbone`` passes an object instead, unchecked.
        A model fitted with a separate concept model rebuilds it the same way (``concept_model``
        passes an object instead); it is needed only for text queries.
        """
        from ceir_sdk.model.persist import load_model

        return load_model(cls, directory, backbone=backbone, backbone_options=backbone_options,
                          concept_model=concept_model)


# Spec keys that name the software around a backbone, not the backbone: they may differ
# between the machine that fitted a model and the one that loads it.
_ENVIRONMENT_KEY_SUFFIXES = ("_version", "device")


def _check_same_backbone(fitted: dict[str, Any], now: dict[str, Any], options: dict[str, Any]) -> None:
    differing = sorted(
        key for key in fitted.keys() & now.keys()
        if not key.endswith(_ENVIRONMENT_KEY_SUFFIXES) and _jsonable(fitted[key]) != _jsonable(now[key]))
    if differing:
        shown = "; ".join(f"{k}: fitted with {fitted[k]!r}, now {now[k]!r}" for k in differing[:4])
        raise IncompatibleFileError(
            f"backbone {fitted.get('name')!r} resolved with options {options!r} is not the one this model was "
            f"fitted with ({shown}); its features would not match the model's weights. Pass backbone_options "
            "(e.g. the seed) to CEIRModel.load (CLI: --backbone-option seed=N), or backbone= to use a backbone "
            "object deliberately")


__all__: Sequence[str] = ["CEIRModel", "clean_concepts"]
