"""Atomic file writes for concept sets and the reply cache (see ceir_sdk.atomic)."""

from ceir_sdk.atomic import atomic_write_json, atomic_write_text

__all__ = ["atomic_write_json", "atomic_write_text"]
