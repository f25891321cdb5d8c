"""The one place ceir-sdk imports faiss: which build is installed, and saying so when none or two are.

faiss-cpu and faiss-gpu (and the community faiss-gpu-cu11/-cu12 wheels) all install the same
module, ``faiss``. The core therefore depends on none of them; the extras pick one
(``ceir-sdk[cpu]`` or ``ceir-sdk[gpu]``). With two installed, whichever was installed last
overwrote the other's files without a word, so a GPU user can end up searching on the CPU (or
with a half-overwritten module): :func:`load` warns loudly when it finds more than one.

    from ceir_sdk._faiss import faiss      # the module, or MissingFaissError naming both extras

``import ceir_sdk._faiss`` itself never imports faiss, so ``ceir doctor`` can report on a
machine where it is missing or broken.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import warnings
from types import ModuleType
from typing import Any

from ceir_sdk.errors import CeirError

log = logging.getLogger("ceir_sdk")

#: Distributions that install the module ``faiss``, by build.
CPU_DISTRIBUTIONS = ("faiss-cpu",)
GPU_DISTRIBUTIONS = ("faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss-gpu-cuvs")
INSTALL_HINT = "pip install 'ceir-sdk[cpu]' (CPU) or 'ceir-sdk[gpu]' (NVIDIA GPU), never both"


class MissingFaissError(CeirError, ImportError):
    """No usable faiss build: the message names both extras. An ImportError too, so code that
    treats faiss as optional (``except ImportError``) keeps working."""


class FaissBuildWarning(RuntimeWarning):
    """More than one faiss distribution is installed; they overwrite each other's module."""


_module: ModuleType | None = None


def installed() -> list[tuple[str, str]]:
    """(distribution, version) of every faiss build installed, CPU ones first."""
    found = []
    for name in (*CPU_DISTRIBUTIONS, *GPU_DISTRIBUTIONS):
        try:
            found.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def is_gpu_build(module: Any) -> bool:
    """Whether this faiss module was built with CUDA (the CPU wheels have no GPU resources class)."""
    return hasattr(module, "StandardGpuResources")


def gpu_count(module: Any) -> int:
    """GPUs this faiss build can see (0 for a CPU build, or a GPU build without a usable device)."""
    try:
        return int(module.get_num_gpus())
    except (AttributeError, RuntimeError):
        return 0


def check_single_build(module: Any = None) -> list[tuple[str, str]]:
    """Warn (log and warnings) when more than one faiss distribution is installed; returns them."""
    found = installed()
    if len(found) > 1:
        listed = " and ".join(f"{n}=={v}" for n, v in found)
        active = ""
        if module is not None:
            active = (f" The module now loaded is a {'GPU' if is_gpu_build(module) else 'CPU'} build "
                      f"(faiss {getattr(module, '__version__', '?')}).")
        names = " ".join(n for n, _ in found)
        message = (
            f"WARNING: {listed} are all installed. They write the same module `faiss`, so whichever was "
            f"installed last silently replaced the other's files.{active} Keep exactly one: "
            f"pip uninstall -y {names}, then pip install 'ceir-sdk[gpu]' for NVIDIA GPUs or 'ceir-sdk[cpu]'."
        )
        log.warning(message)
        warnings.warn(message, FaissBuildWarning, stacklevel=3)
    return found


def load() -> ModuleType:
    """Import faiss once, check the installed builds, and return the module.

    Raises :class:`MissingFaissError` (one line, naming both extras) when no faiss is
    importable, and says which distribution is broken when one is installed but fails to load
    (e.g. faiss-gpu on a machine without the CUDA libraries).
    """
    global _module
    if _module is not None:
        return _module
    try:
        module = importlib.import_module("faiss")
    except ImportError as exc:
        found = installed()
        if not found or getattr(exc, "name", None) == "faiss":
            raise MissingFaissError(f"the index needs faiss and no faiss build is installed: {INSTALL_HINT}") from exc
        listed = ", ".join(f"{n}=={v}" for n, v in found)
        raise MissingFaissError(
            f"{listed} is installed but faiss cannot be imported ({exc}); on a machine without CUDA use the CPU "
            f"set: pip uninstall -y {' '.join(n for n, _ in found)}; pip install 'ceir-sdk[cpu]'"
        ) from exc
    check_single_build(module)
    _module = module
    return module


def __getattr__(name: str) -> Any:
    # PEP 562: `from ceir_sdk._faiss import faiss` imports faiss only when asked for.
    if name == "faiss":
        return load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
