"""ModelConfig: a saved CEIR model's config.json as data, with every version default in one place.

A model directory holds ``config.json`` (this) and ``weights.safetensors``. Models saved by
earlier versions lack some keys; :meth:`ModelConfig.from_json` fills them here, and only here,
with what those versions meant (no ``presence``: concepts count above z = 0 and the parts rule
is on; no ``concept_template``: the concept as is; ...). Like open_clip's model configs, the
dataclass is the schema: a reader finds every key a model can carry, and its default, below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ceir_sdk.atomic import check_format
from ceir_sdk.errors import IncompatibleFileError

FORMAT = "ceir-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"


@dataclass
class LatentConfig:
    """The latent model: its registered name, the options it was built with, its own state config."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    latent_dim: int | None = None


@dataclass
class PresenceConfig:
    """When a concept counts as present (ceir_sdk.model.presence). Saved before presence
    calibration: no thresholds (z > 0); saved before the parts rule: by_parts on (it only ever
    hides a description whose own words' concepts are absent)."""

    method: str | None = None
    #: (C,) z-score per concept (an array when fitted; a list, unreachable ones as null, when read)
    thresholds: Any = None
    by_parts: bool = True


@dataclass
class ModelConfig:
    """Everything config.json says about a fitted model (the weights' checksum included)."""

    concepts: list[str]
    latent_model: LatentConfig
    weights_sha256: str
    backbone: dict[str, Any] | None = None
    #: the plugin and distribution of each component, to name what to install when one is missing
    plugins: dict[str, Any] = field(default_factory=dict)
    #: options the backbone was built with (machine options such as device are never saved)
    backbone_options: dict[str, Any] = field(default_factory=dict)
    feature_dim: int | None = None
    #: where the bottleneck's targets came from: "backbone" (its own text tower, so the projection is
    #: the zero-shot scores; every model saved before concept models) or "concept model"
    concept_targets: str = "backbone"
    #: the separate concept model's spec (None: none, or only its features were given) and options;
    #: its text tower embeds text queries, and the saved concept text embeddings are in its space
    concept_model: dict[str, Any] | None = None
    concept_model_options: dict[str, Any] = field(default_factory=dict)
    bottleneck: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    val_fraction: float = 0.1
    concept_template: str | list[str] = "{}"
    presence: PresenceConfig = field(default_factory=PresenceConfig)
    label_information: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    ceir_sdk_version: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        sha = data.pop("weights_sha256")
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **data,
                "files": {WEIGHTS_FILE: {"sha256": sha}}}

    @classmethod
    def from_json(cls, data: Any, what: str) -> ModelConfig:
        """Read config.json of any supported version; ``what`` names the model in errors."""
        check_format(data, FORMAT, FORMAT_VERSION, f"{what}: config.json",
                     upgrade="upgrade ceir-sdk or re-save the model")
        try:
            sha = str(data["files"][WEIGHTS_FILE]["sha256"])
            concepts = [str(c) for c in data["concepts"]]
            latent = data["latent_model"]
            latent_config = LatentConfig(name=str(latent["name"]), options=dict(latent.get("options") or {}),
                                         config=dict(latent.get("config") or {}), latent_dim=latent.get("latent_dim"))
        except (KeyError, TypeError) as exc:
            raise IncompatibleFileError(f"{what}: config.json lacks {exc}; the file is damaged") from exc
        presence = data.get("presence") or {}
        return cls(
            concepts=concepts, latent_model=latent_config, weights_sha256=sha,
            backbone=data.get("backbone"), plugins=dict(data.get("plugins") or {}),
            backbone_options=dict(data.get("backbone_options") or {}), feature_dim=data.get("feature_dim"),
            concept_targets=str(data.get("concept_targets", "backbone")), concept_model=data.get("concept_model"),
            concept_model_options=dict(data.get("concept_model_options") or {}),
            bottleneck=dict(data.get("bottleneck") or {}), seed=int(data.get("seed", 0)),
            val_fraction=float(data.get("val_fraction", 0.1)),
            concept_template=data.get("concept_template", "{}"),
            presence=PresenceConfig(method=presence.get("method"), thresholds=presence.get("thresholds"),
                                    by_parts=bool(presence.get("by_parts", True))),
            label_information=dict(data.get("label_information") or {}),
            provenance=dict(data.get("provenance") or {}), ceir_sdk_version=data.get("ceir_sdk_version"),
        )
