"""Saving and loading a fitted CEIRModel: config.json (see :mod:`ceir_sdk.model.config`) and
weights.safetensors, each replaced atomically, the config last; no pickle anywhere."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ceir_sdk._version import __version__
from ceir_sdk.atomic import atomic_write_bytes, atomic_write_json, sha256_bytes
from ceir_sdk.errors import BadInputError, IncompatibleFileError, UnknownNameError
from ceir_sdk.model.config import (
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    LatentConfig,
    ModelConfig,
    PresenceConfig,
)
from ceir_sdk.model.fileio import read_checked_tensors, read_json, tensors_to_bytes

if TYPE_CHECKING:
    from ceir_sdk.model.ceir import CEIRModel


def save_model(model: CEIRModel, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` (see ``CEIRModel.save``)."""
    from ceir_sdk.model.presence import METHOD as PRESENCE_METHOD

    model._require_fitted()
    out = Path(directory)
    latent_config, latent_tensors = model.latent_model.state()
    tensors: dict[str, np.ndarray] = {f"bottleneck.{k}": v for k, v in model.bottleneck.tensors().items()}
    tensors.update({f"latent.{k}": v for k, v in latent_tensors.items()})
    tensors["concept_text_embeddings"] = model.concept_text_embeddings()
    data = tensors_to_bytes(tensors, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    backbone_spec = model._backbone.spec() if model._backbone is not None else model._backbone_spec
    concept_spec = (model._concept_model.spec() if model._concept_model is not None
                    else model._concept_model_spec)
    config = ModelConfig(
        concepts=model.concepts,
        latent_model=LatentConfig(name=model.latent_name, options=model.latent_options, config=latent_config,
                                  latent_dim=int(model.latent_model.latent_dim)),
        weights_sha256=sha256_bytes(data),
        backbone=backbone_spec,
        plugins={kind: origin for kind, name in (("backbone", (backbone_spec or {}).get("name")),
                                                  ("concept_model", (concept_spec or {}).get("name")),
                                                  ("latent_model", model.latent_name))
                 if (origin := _plugin_origin("backbone" if kind == "concept_model" else kind, name))
                 is not None},
        backbone_options=_json_options({k: v for k, v in model.backbone_options.items()
                                        if k not in MACHINE_BACKBONE_OPTIONS}),
        feature_dim=model.feature_dim,
        concept_targets=model.concept_targets,
        concept_model=concept_spec,
        concept_model_options=_json_options({k: v for k, v in model.concept_model_options.items()
                                             if k not in MACHINE_BACKBONE_OPTIONS}),
        bottleneck=asdict(model.bottleneck.config),
        seed=model.seed,
        val_fraction=model.val_fraction,
        concept_template=model.concept_template,
        presence=PresenceConfig(method=PRESENCE_METHOD, thresholds=model.presence_thresholds,
                                by_parts=model.presence_by_parts),
        label_information=model.label_information,
        provenance=model.provenance,
        ceir_sdk_version=__version__,
    )
    atomic_write_bytes(out / WEIGHTS_FILE, data)
    atomic_write_json(out / CONFIG_FILE, _jsonable(config.to_json()))
    return out


def load_model(cls: type[CEIRModel], directory: str | Path, *, backbone: Any = None,
               backbone_options: dict[str, Any] | None = None, concept_model: Any = None) -> CEIRModel:
    """Read a model directory into a new ``cls`` (see ``CEIRModel.load``)."""
    from ceir_sdk.model.bottleneck import BottleneckConfig
    from ceir_sdk.model.presence import thresholds_from_json

    d = Path(directory)
    if not d.is_dir():
        raise IncompatibleFileError(f"{d} is not a directory; a CEIR model is saved as a directory")
    what = f"CEIR model {d}"
    cfg = ModelConfig.from_json(read_json(d / CONFIG_FILE, what), what)
    concepts, latent_cfg = cfg.concepts, cfg.latent_model
    tensors = read_checked_tensors(d / WEIGHTS_FILE, cfg.weights_sha256, what)
    model = cls(
        backbone if backbone is not None else None,
        latent=latent_cfg.name, latent_options=latent_cfg.options,
        bottleneck=BottleneckConfig(**cfg.bottleneck),
        val_fraction=cfg.val_fraction, seed=cfg.seed,
        concept_template=cfg.concept_template,
        backbone_options={**cfg.backbone_options, **(backbone_options or {})},
    )
    if backbone is None:
        model._backbone_spec = cfg.backbone
        model._fitted_backbone_spec = model._backbone_spec
    model._plugin_origins = dict(cfg.plugins)
    model.concept_targets = cfg.concept_targets
    model.concept_model_options = {**cfg.concept_model_options, **{
        k: v for k, v in (backbone_options or {}).items() if k in MACHINE_BACKBONE_OPTIONS}}
    if concept_model is not None:
        model._concept_model = concept_model
    elif cfg.concept_model is not None:
        model._concept_model_spec = model._fitted_concept_model_spec = cfg.concept_model
    try:
        bott = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("bottleneck.")}
        model.bottleneck.load_tensors(bott, concepts)
        w = model.bottleneck.weight
        assert w is not None
        text = np.asarray(tensors["concept_text_embeddings"], dtype=np.float32)
        # Concept text embeddings are in the concept model's space, of its width, when it gave the targets.
        from_backbone = cfg.concept_targets == "backbone"
        if w.shape[0] != len(concepts) or text.shape[0] != w.shape[0] or (from_backbone and text.shape != w.shape):
            raise ValueError(f"weights for {w.shape[0]} concepts of width {w.shape[1]}, concept text embeddings "
                             f"{text.shape}, config lists {len(concepts)} concepts")
        from ceir_sdk.plugins import get_latent_model

        try:
            latent = get_latent_model(latent_cfg.name, **latent_cfg.options)
        except UnknownNameError as exc:
            raise BadInputError(
                f"{what} needs the latent model {latent_cfg.name!r}, which no installed plugin provides "
                f"({exc.args[0] if exc.args else exc}); {_install_hint(cfg.plugins.get('latent_model'))} "
                "(`ceir plugins` lists what is installed)") from None
        latent.load_state(latent_cfg.config,
                          {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("latent.")})
    except BadInputError:
        raise  # a missing plugin, already explained; not damage to the files
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise IncompatibleFileError(f"{what}: weights do not match config.json ({exc})") from exc
    model._text_embeddings = text
    model.latent_model = latent
    model.presence_thresholds = thresholds_from_json(cfg.presence.thresholds, len(concepts))
    model.presence_by_parts = cfg.presence.by_parts
    model.label_information = dict(cfg.label_information)
    model.provenance = dict(cfg.provenance)
    return model


def _plugin_origin(kind: str, name: Any) -> dict[str, Any] | None:
    """The plugin and distribution that registered a component name, for the saved config."""
    if not isinstance(name, str) or not name:
        return None
    from ceir_sdk.plugins import get_host

    host = get_host()
    registration = host.registrations(kind).get(name.partition(":")[0])
    if registration is None:
        return None
    status = host.statuses.get(registration.plugin)
    return {"plugin": registration.plugin, "distribution": status.distribution if status else None,
            "version": status.version if status else None}


def _install_hint(origin: Any) -> str:
    if isinstance(origin, dict) and origin.get("distribution"):
        version = f"=={origin['version']}" if origin.get("version") else ""
        return (f"it came from the plugin {origin.get('plugin')!r}: install it with "
                f"`pip install {origin['distribution']}{version}`")
    return "install the plugin that registers it"


#: Backbone options about the machine a model runs on, not the model: not saved with it, so a
#: model fitted with device="cuda" loads on a CPU machine (pass them again when loading).
MACHINE_BACKBONE_OPTIONS = frozenset({"device", "precision", "batch_size", "num_workers", "cache", "on_error",
                                      "max_pixels", "progress"})

def _json_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options that JSON can carry; others (cache objects, callables) are left to the loader."""
    kept = {}
    for key, value in options.items():
        try:
            json.dumps(_jsonable(value))
        except (TypeError, ValueError):
            continue
        kept[key] = _jsonable(value)
    return kept


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if np.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj
