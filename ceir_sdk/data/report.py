"""What happened while loading a set of images: skipped files with reasons, ignored files, conversions."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from ceir_sdk.data.images import ImageLoadError
from ceir_sdk.errors import BadInputError

OnError = Literal["skip", "fail"]
ON_ERROR_CHOICES: tuple[str, ...] = ("skip", "fail")

logger = logging.getLogger("ceir_sdk.data")


def check_on_error(on_error: str) -> OnError:
    if on_error not in ON_ERROR_CHOICES:
        raise BadInputError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    return on_error  # type: ignore[return-value]


@dataclass(frozen=True)
class SkippedImage:
    id: str
    path: str | None
    problem: str


@dataclass
class LoadReport:
    """Filled while a dataset is read; ``summary()`` is one readable paragraph."""

    n_loaded: int = 0
    skipped: list[SkippedImage] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)
    conversions: Counter[str] = field(default_factory=Counter)

    def record_loaded(self, note: str = "") -> None:
        self.n_loaded += 1
        for part in filter(None, (p.strip() for p in note.split(";"))):
            self.conversions[part] += 1

    def record_error(self, error: ImageLoadError, *, item_id: str, path: str | None, on_error: OnError) -> None:
        """Apply the user's policy to one failed image: raise, or remember it and go on."""
        if on_error == "fail":
            raise BadInputError(
                f"cannot use image {error.source}: {error.problem}. "
                + (f"{error.hint}; " if error.hint else "")
                + "or skip such images and get a report: on_error='skip' (on the command line, --on-error skip)."
            ) from None
        self.skipped.append(SkippedImage(item_id, path, error.problem))

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def reasons(self) -> Counter[str]:
        # Group by the problem without per-file detail in parentheses.
        return Counter(s.problem.split(" (")[0] for s in self.skipped)

    def summary(self) -> str:
        total = self.n_loaded + self.n_skipped
        parts = [f"loaded {self.n_loaded} of {total} images"]
        if self.skipped:
            reasons = ", ".join(f"{n} {why}" for why, n in self.reasons().most_common())
            examples = ", ".join(s.path or s.id for s in self.skipped[:3])
            more = f" and {self.n_skipped - 3} more" if self.n_skipped > 3 else ""
            parts.append(f"skipped {self.n_skipped} ({reasons}; e.g. {examples}{more})")
        if self.ignored_files:
            examples = ", ".join(self.ignored_files[:3])
            more = f" and {len(self.ignored_files) - 3} more" if len(self.ignored_files) > 3 else ""
            parts.append(f"ignored {len(self.ignored_files)} non-image files ({examples}{more})")
        if self.conversions:
            parts.append("converted: " + ", ".join(f"{n} {what}" for what, n in self.conversions.most_common()))
        return "; ".join(parts)

    def details(self) -> str:
        """One line per skipped image: path (or id) and problem."""
        return "\n".join(f"{s.path or s.id}: {s.problem}" for s in self.skipped)

    def log(self) -> None:
        if self.skipped:
            logger.warning(self.summary())
        else:
            logger.info(self.summary())
