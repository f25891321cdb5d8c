"""Choosing the backend and precision by measurement (`ceir tune BUNDLE`, ``Runtime(tune=True)``).

Which path is fastest depends on the CPU and on the model: OpenVINO bf16 wins by far on a CPU
with AMX, onnxruntime int8 on one without bf16 units, and a reduced-precision path that is
fast can still disagree with fp32 too much on some models. So each available backend x
precision is timed on a small batch and its latents compared with fp32's on check images; the
fastest path whose latent min cosine is at least the bar is chosen. The choice is recorded in a
JSON cache keyed by the bundle's image graphs, the CPU model and features, the thread count and
the library versions: the next load on the same machine reuses it, and a load on another CPU
or after an upgrade does not (docs/deploy.md, Backends).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ceir_onnx.runtime.backends import (
    BACKENDS,
    PRECISIONS,
    import_openvino,
    installed_backends,
    module_version,
    openvino_supports,
)
from ceir_sdk.errors import BadInputError
from ceir_sdk.machine import cpu_info

_log = logging.getLogger("ceir_onnx.runtime")

#: agreement bar: latent min row cosine to fp32 on the check images
MIN_COSINE = 0.999
#: images per timed call: small, so that tuning takes seconds, large enough for batch-level kernels
TIMING_BATCH = 16
#: timed calls per path after one warm-up call (the median is kept)
TIMING_REPEATS = 3
#: agreement runs in the runtime's default batch (dynamic int8 scales per batch)
AGREEMENT_BATCH = 32
CACHE_ENV = "CEIR_TUNE_CACHE"
CACHE_FORMAT = "ceir-tune-cache"
CACHE_FORMAT_VERSION = 1

#: timer(label, run) -> seconds per call of run(); injectable so tests can fix the figures
Timer = Callable[[str, Callable[[], object]], float]


@dataclass
class Measurement:
    """One backend x precision: speed, agreement to fp32, and whether it may be chosen."""

    backend: str
    precision: str
    images_per_s: float | None = None
    latent_min_cosine: float | None = None
    concepts_min_cosine: float | None = None
    passed: bool = False
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision}"


@dataclass
class TuneResult:
    """The measurements of one tuning run and the path chosen from them."""

    backend: str | None
    precision: str | None
    measurements: list[Measurement]
    key: dict[str, Any]
    min_cosine: float = MIN_COSINE
    check_images: str = ""
    timing_batch: int = TIMING_BATCH
    measured_at: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneResult:
        data = dict(data)
        data["measurements"] = [Measurement(**m) for m in data.get("measurements", [])]
        return cls(**data)

    def best(self, backend: str = "auto", precision: str = "auto") -> Measurement | None:
        """The fastest passing measurement with this backend and precision ("auto": any)."""
        return choose([m for m in self.measurements if backend in ("auto", m.backend)
                       and precision in ("auto", m.precision)])

    def table(self) -> str:
        """The measurements as text lines, the chosen one marked."""
        lines = [f"{'path':<22} {'images/s':>9} {'latent min cos':>15} {'concepts min cos':>17}  verdict"]
        for m in sorted(self.measurements, key=lambda m: -(m.images_per_s or 0)):
            chosen = (m.backend, m.precision) == (self.backend, self.precision)
            verdict = "CHOSEN" if chosen else ("ok" if m.passed else f"refused: {m.note}")
            lines.append(f"{m.label:<22} {_fmt(m.images_per_s, '.1f'):>9} {_fmt(m.latent_min_cosine, '.6f'):>15} "
                         f"{_fmt(m.concepts_min_cosine, '.6f'):>17}  {verdict}")
        return "\n".join(lines)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def choose(measurements: Sequence[Measurement]) -> Measurement | None:
    """The fastest measurement that passed the agreement bar (None when none did)."""
    passed = [m for m in measurements if m.passed and m.images_per_s]
    return max(passed, key=lambda m: m.images_per_s or 0.0) if passed else None


# -- the key and the cache -----------------------------------------------------------------
def bundle_key(manifest: dict[str, Any]) -> dict[str, str]:
    """The checksums of the bundle's image and head graphs: a re-exported model is a new key."""
    files = manifest.get("files", {})
    graphs = manifest["graphs"]
    names = [v["file"] for v in graphs["image"]["variants"].values()]
    names += [v["static"]["file"] for v in graphs["image"]["variants"].values() if "static" in v]
    if "head" in graphs:
        names.append(graphs["head"]["variants"]["fp32"]["file"])
    return {name: str(files.get(name, {}).get("sha256", "")) for name in sorted(names)}


def machine_key(threads: int | None) -> dict[str, Any]:
    """What a timing depends on besides the model: CPU, threads and the libraries' versions."""
    from ceir_onnx import __version__

    info = cpu_info()
    return {"cpu_model": info["cpu_model"], "cpu_features": list(info["cpu_features"]),
            "threads": int(threads or info["usable_cores"]),
            "versions": {"ceir_onnx": __version__, "numpy": np.__version__, **installed_backends()}}


def cache_key(manifest: dict[str, Any], threads: int | None) -> dict[str, Any]:
    return {"bundle": bundle_key(manifest), "machine": machine_key(threads)}


def cache_path() -> Path:
    """$CEIR_TUNE_CACHE, else $XDG_CACHE_HOME/ceir/tune.json (~/.cache/ceir/tune.json)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ceir" / "tune.json"


def _read_entries(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        # A damaged cache only costs a re-measurement; it must not stop a load.
        _log.warning("ignoring the tuning cache %s (%s); `ceir tune` rewrites it", path, exc)
        return []
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        _log.warning("ignoring %s: not a ceir tuning cache", path)
        return []
    if data.get("format_version") != CACHE_FORMAT_VERSION:
        return []  # written by another ceir-onnx: re-measure rather than misread it
    return [e for e in data.get("entries", []) if isinstance(e, dict)]


def lookup(manifest: dict[str, Any], threads: int | None, path: Path | None = None) -> TuneResult | None:
    """The recorded result for this bundle on this machine, threads and versions, if any."""
    path = path or cache_path()
    if not path.is_file():
        return None
    key = cache_key(manifest, threads)
    for entry in _read_entries(path):
        if entry.get("key") == key:
            try:
                return TuneResult.from_dict(entry["result"])
            except (KeyError, TypeError) as exc:
                _log.warning("ignoring a malformed entry of %s (%s)", path, exc)
    return None


def record(result: TuneResult, path: Path | None = None) -> Path:
    """Add (or replace) the entry for ``result.key``; entries of other bundles and machines stay."""
    from ceir_sdk.atomic import atomic_write_json

    path = path or cache_path()
    entries = [e for e in _read_entries(path) if e.get("key") != result.key]
    entries.append({"key": result.key, "result": result.to_dict()})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"format": CACHE_FORMAT, "format_version": CACHE_FORMAT_VERSION, "entries": entries})
    return path


# -- measuring ------------------------------------------------------------------------------
def candidates(manifest: dict[str, Any], installed: dict[str, str]) -> list[tuple[str, str]]:
    """The backend x precision paths this bundle and environment offer on a CPU.

    onnxruntime: fp32 and int8 (its CPU provider has no bf16 path, and fp16 graphs run slowly
    on CPU: the fp16 variant is for GPUs). OpenVINO: fp32, int8 (the static graph where the
    bundle has one), and bf16 / fp16 where its CPU plugin says the CPU computes them natively."""
    variants = manifest["graphs"]["image"]["variants"]
    found: list[tuple[str, str]] = []
    if "onnxruntime" in installed:
        found += [("onnxruntime", p) for p in ("fp32", "int8") if p in variants]
    if "openvino" in installed:
        precisions = ["fp32", *(["int8"] if "int8" in variants else []), "bf16", "fp16"]
        if "head" not in manifest["graphs"]:  # bf16/fp16 keep the head in fp32 via the head graph
            precisions = [p for p in precisions if p in ("fp32", "int8")]
        found += [("openvino", p) for p in precisions if openvino_supports(p)]
    return found


def default_timer(label: str, run: Callable[[], object]) -> float:
    """Median seconds of TIMING_REPEATS calls after a warm-up call."""
    del label
    run()
    times = []
    for _ in range(TIMING_REPEATS):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def check_pixels(manifest: dict[str, Any], images: Any = None, root: Path | None = None) -> tuple[np.ndarray, str]:
    """Preprocessed check images: the given ones; else those the exporter stored in the bundle
    (the user's check images at export); else the exporter's deterministic synthetic images
    (those its agreement figures were measured on when it was given none)."""
    from ceir_onnx.runtime.preprocess import PreprocessConfig, iter_images, preprocess_one

    stored = manifest.get("check_pixels")
    if images is None and stored and root is not None:
        from safetensors.numpy import load_file

        path = root / stored["file"]
        if not path.is_file():
            raise BadInputError(f"{path} is missing from the bundle (its manifest lists it): re-export the bundle, "
                                "or pass check images")
        pixels = np.asarray(load_file(str(path))["pixels"], dtype=np.float32)
        return pixels, f"{len(pixels)} check images stored in the bundle at export (given to the exporter)"
    config = PreprocessConfig.from_dict(manifest["preprocess"])
    if images is None:
        from ceir_onnx.export import synthetic_images  # numpy only: no torch

        items: Sequence[Any] = synthetic_images()
        source = f"{len(items)} synthetic images (pass check images for a verdict on your data)"
    else:
        items = iter_images(images)
        source = f"{len(items)} given images"
    if len(items) < 2:
        raise BadInputError(f"tuning needs at least 2 check images; got {len(items)}")
    return np.stack([preprocess_one(im, config) for im in items]).astype(np.float32), source


def _outputs(session: Any, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    parts = [session.run(None, {"pixels": pixels[i : i + AGREEMENT_BATCH]})
             for i in range(0, len(pixels), AGREEMENT_BATCH)]
    concepts = np.concatenate([np.asarray(p[0], np.float32) for p in parts])
    latent = np.concatenate([np.asarray(p[1], np.float32) for p in parts])
    return concepts, latent


def _runner(session: Any, batch: np.ndarray) -> Callable[[], object]:
    return lambda: session.run(None, {"pixels": batch})


def tune(bundle_dir: str | os.PathLike[str], *, threads: int | None = None, check_images: Any = None,
         timer: Timer | None = None, min_cosine: float = MIN_COSINE, timing_batch: int = TIMING_BATCH,
         paths: Sequence[tuple[str, str]] | None = None, manifest: dict[str, Any] | None = None,
         progress: Callable[[str], None] | None = None) -> TuneResult:
    """Time and check every available path (or ``paths``) and choose the fastest that agrees.

    Nothing is recorded here: :func:`record` does that (``ceir tune`` and ``Runtime(tune=True)``
    call it)."""
    from ceir_onnx.bundle import read_manifest
    from ceir_onnx.runtime.sessions import Sessions
    from ceir_onnx.variants import cosine_rows

    root = Path(bundle_dir).resolve()
    manifest = manifest or read_manifest(root)
    timer = timer or default_timer
    installed = installed_backends()
    todo = list(paths) if paths is not None else candidates(manifest, installed)
    if not todo:
        raise BadInputError(f"no backend can run {root}: install onnxruntime or openvino")
    pixels, source = check_pixels(manifest, check_images, root)
    reps = -(-timing_batch // len(pixels))
    batch = np.ascontiguousarray(np.concatenate([pixels] * reps)[:timing_batch])

    def open_path(backend: str, precision: str) -> Sessions:
        return Sessions(root, manifest, precision=precision, providers="cpu", threads=threads, spinning=False,
                        verify=False, backend=backend)

    # The reference: fp32, on onnxruntime where installed (the exporter's own parity check runs there).
    ref_backend = "onnxruntime" if "onnxruntime" in installed else "openvino"
    ref_concepts, ref_latent = _outputs(open_path(ref_backend, "fp32").image, pixels)
    measurements = []
    for backend, precision in todo:
        m = Measurement(backend, precision)
        measurements.append(m)
        if progress:
            progress(f"measuring {m.label}")
        try:
            session = open_path(backend, precision).image
            concepts, latent = _outputs(session, pixels)
            m.latent_min_cosine = float(cosine_rows(ref_latent, latent).min())
            m.concepts_min_cosine = float(cosine_rows(ref_concepts, concepts).min())
            seconds = timer(m.label, _runner(session, batch))
            m.images_per_s = timing_batch / seconds if seconds > 0 else None
        except Exception as exc:  # a path that fails to load or run is reported, not chosen
            m.note = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
            continue
        m.passed = m.latent_min_cosine >= min_cosine
        if not m.passed:
            m.note = f"latent min cosine {m.latent_min_cosine:.6f} < {min_cosine}"
    best = choose(measurements)
    notes = [] if best else [f"no path met latent min cosine >= {min_cosine}"]
    return TuneResult(backend=best.backend if best else None, precision=best.precision if best else None,
                      measurements=measurements, key=cache_key(manifest, threads), min_cosine=min_cosine,
                      check_images=source, timing_batch=timing_batch,
                      measured_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                      notes=notes)


# -- what a Runtime runs ---------------------------------------------------------------------
def resolve(root: Path, manifest: dict[str, Any], *, backend: str, precision: str, providers: Any,
            threads: int | None, tune_now: bool) -> tuple[str, str, dict[str, Any]]:
    """(backend, precision, how it was chosen) for a Runtime.

    Both given: used as they are. Otherwise a recorded tuning result for this bundle, machine,
    threads and versions decides what was left "auto"; without one, ``tune_now`` measures
    (and records), else the defaults (onnxruntime; fp32 on a CPU, fp16 on a GPU build) apply and
    the description says that no tuning was recorded. GPU providers are never tuned."""
    if backend not in ("auto", *BACKENDS):
        raise BadInputError(f"backend must be 'auto', 'onnxruntime' or 'openvino'; got {backend!r}")
    if precision not in ("auto", *PRECISIONS):
        raise BadInputError(f"there is no {precision!r} image graph: precision must be 'auto', 'fp32', 'bf16', "
                            f"'int8' or 'fp16'")
    installed = installed_backends()
    if backend == "openvino" and "openvino" not in installed:
        import_openvino()  # raises the error that says how to install it
    if backend != "auto" and precision != "auto":
        return backend, precision, {"chosen_by": "given"}
    if backend != "openvino" and _gpu_requested(providers):
        return "onnxruntime", precision, {
            "chosen_by": "default", "note": "a GPU provider is active: onnxruntime (fp16 when exported); "
                                            "GPU paths are not tuned (unmeasured)"}
    result = lookup(manifest, threads)
    how: dict[str, Any] = {"chosen_by": "tuning record", "cache": str(cache_path())}
    if result is None and tune_now:
        result = tune(root, threads=threads, manifest=manifest)
        how = {"chosen_by": "measured now", "cache": str(record(result))}
    if result is not None:
        best = result.best(backend, precision)
        how["tuning"] = result.to_dict()
        if best is not None:
            how["figures"] = asdict(best)
            _log.info("%s: running %s (%s, %.1f images/s, latent min cosine %.6f)", root, best.label,
                      how["chosen_by"], best.images_per_s or 0, best.latent_min_cosine or 0)
            return best.backend, best.precision, how
        how["note"] = f"the tuning result has no passing path for backend={backend}, precision={precision}"
    else:
        how = {"chosen_by": "default",
               "note": "no tuning recorded for this bundle on this machine; `ceir tune BUNDLE` (or "
                       "Runtime(..., tune=True)) measures and records one"}
    if backend == "auto":
        backend = "openvino" if precision == "bf16" or "onnxruntime" not in installed else "onnxruntime"
        if backend == "openvino" and "openvino" not in installed:
            import_openvino()
    if precision == "auto" and backend == "openvino":
        precision = "fp32"
    how["chosen_by"] = "default" if how["chosen_by"] != "given" else "given"
    return backend, precision, how


def _gpu_requested(providers: Any) -> bool:
    from ceir_onnx.runtime.providers import GPU_PROVIDERS, onnxruntime_module, resolve_providers

    if module_version("onnxruntime", "onnxruntime") is None:  # an OpenVINO-only install has no GPU path
        return False
    ort = onnxruntime_module()

    requested, _ = resolve_providers(providers)
    available = ort.get_available_providers()
    return any(p in GPU_PROVIDERS and p in available for p in requested)
