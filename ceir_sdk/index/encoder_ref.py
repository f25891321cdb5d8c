"""EncoderRef: what an index records about the model that embedded its items, and how it gets it back.

An index's stored latents are only comparable with queries embedded the same way: the same
model (checked by its fingerprint) and, for an ONNX bundle, the same image graph (``precision``:
an index built with the int8 graph must be queried with the int8 graph, not fp32). The ref is
saved in the index manifest under ``"encoder"`` and honoured by ``ConceptIndex.encoder`` and by
:func:`encoder_for_add`, so the CLI and a Python user embed queries and additions alike.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ceir_sdk.errors import BadInputError
from ceir_sdk.index.encoder import Encoder, encoder_kind, load_encoder, model_fingerprint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderRef:
    """The model an index was built with: where it is, what it was, and which graph ran.

    ``providers`` is None unless given in Python: the CLI does not record it, because the
    machine that searches an index is often not the one that built it (a GPU build, a CPU
    service), and providers choose hardware, not numbers. ``precision`` does choose numbers.
    """

    path: str
    kind: str | None = None
    fingerprint: str | None = None
    precision: str | None = None
    providers: str | tuple[str, ...] | None = None
    #: where the model sat relative to the index when saved, so a deployment moved as a whole still finds it
    relative_to_index: str | None = None

    @classmethod
    def for_model(cls, path: str | Path, *, precision: str | None = None,
                  providers: str | tuple[str, ...] | list[str] | None = None) -> EncoderRef:
        """The ref of a model directory or bundle as it is now (kind and fingerprint read from it)."""
        return cls(path=str(Path(path).resolve()), kind=encoder_kind(path), fingerprint=model_fingerprint(path),
                   precision=precision, providers=_providers(providers))

    @classmethod
    def from_json(cls, data: EncoderRef | dict[str, Any] | None) -> EncoderRef | None:
        """Read the manifest's ``"encoder"`` entry; keys a newer ceir-sdk may add are ignored."""
        if data is None or isinstance(data, EncoderRef):
            return data
        if not isinstance(data, dict) or "path" not in data:
            raise BadInputError(f"an encoder ref needs at least a 'path'; got {data!r}")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["providers"] = _providers(values.get("providers"))
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The manifest entry; fields that were never set are left out, as before EncoderRef existed."""
        out = {k: v for k, v in asdict(self).items() if v is not None or k == "fingerprint"}
        if isinstance(self.providers, tuple):
            out["providers"] = list(self.providers)
        return out

    def runtime_options(self) -> dict[str, Any]:
        """What ``load_encoder`` needs to run the recorded graph (nothing for a torch model)."""
        options: dict[str, Any] = {}
        if self.precision is not None:
            options["precision"] = self.precision
        if self.providers is not None:
            options["providers"] = list(self.providers) if isinstance(self.providers, tuple) else self.providers
        return options

    def with_relative_path(self, root: Path) -> EncoderRef:
        """This ref with the model's place relative to the index directory ``root``."""
        try:
            relative = os.path.relpath(Path(self.path).resolve(), root.resolve())
        except ValueError:  # another drive (Windows)
            return self
        return replace(self, relative_to_index=relative)

    def locate(self, index_root: Path | None = None) -> Path:
        """Where the model is: its saved path, or the same place relative to the index when the two
        were moved together. Warns when the model found was refitted since; a clear error when gone."""
        recorded = Path(self.path)
        relative = self.relative_to_index
        moved = None if relative is None or index_root is None else index_root / relative
        for candidate in (recorded, moved):
            if candidate is not None and candidate.exists():
                _warn_if_refitted(candidate, self.fingerprint)
                return candidate.resolve()
        raise BadInputError(
            f"the model this index was built with is no longer at {recorded}"
            + (f" (nor at {relative} from the index)" if relative else "")
            + ": it was moved or deleted. Pass --model PATH to `ceir index search`, or set "
            "index.encoder = load_encoder(PATH) (or a CEIRModel)"
        )

    def load(self, index_root: Path | None = None, **overrides: Any) -> Encoder:
        """The encoder that embeds queries the way the index's items were embedded.

        ``overrides`` (precision, providers, threads, ...) replace the recorded options."""
        return load_encoder(self.locate(index_root), **{**self.runtime_options(), **overrides})


def plan_add(ref: EncoderRef | None, index_root: Path | None, model: str | Path | None = None, *,
             precision: str | None = None, providers: str | list[str] | None = None,
             other_model: bool = False) -> tuple[Path, dict[str, Any]]:
    """Which model, with which runtime options, embeds items added to an index: reconciled with
    the one that built it, before any image is read.

    Without ``model``, the index's own model, with its recorded precision. A ``model`` that is
    not the recorded one (by fingerprint) is refused unless ``other_model`` (its latents would
    not be comparable). A precision other than the recorded one is allowed with a RuntimeWarning.
    """
    if model is None and ref is None:
        raise BadInputError("this index records no model; pass one to embed the new items (--model PATH)")
    if ref is not None and model is not None and not other_model and ref.fingerprint:
        if model_fingerprint(model) != ref.fingerprint:
            raise BadInputError(
                f"{model} is not the model this index was built with ({ref.path}); its latents would not be "
                "comparable with the index's. Leave out --model to use the index's own model, build a new index, "
                "or pass --other-model if the two are known to be equivalent")
    if ref is not None and not other_model:
        precision = precision or ref.precision
    if ref is not None and ref.precision and precision and precision != ref.precision:
        # a warning, not a log line: the CLI shows it once as "warning: ...", Python callers can filter it
        warnings.warn(f"the index was built with --precision {ref.precision}; adding with {precision} mixes "
                      "latents of two graphs", RuntimeWarning, stacklevel=3)
    options: dict[str, Any] = {}
    if precision is not None:
        options["precision"] = precision
    if providers is not None:
        options["providers"] = providers
    if model is not None:
        return Path(model), options
    assert ref is not None
    return ref.locate(index_root), options


def _providers(value: Any) -> str | tuple[str, ...] | None:
    if value is None or isinstance(value, str):
        return value
    return tuple(str(v) for v in value)


def _warn_if_refitted(path: Path, recorded: str | None) -> None:
    """The model found where the index says may have been refitted or re-exported since: say so."""
    current = model_fingerprint(path)
    if recorded is None or current is None or current == recorded:
        return
    message = (f"the model at {path} is not the one this index was built with (its weights changed: refitted or "
               "re-exported?); text, image and edit queries will not match the stored items. Rebuild the index "
               "with it, or pass the original with --model / index.encoder")
    log.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=4)
