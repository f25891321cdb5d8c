"""The CPU model and vector features a tuning record is keyed by: :mod:`ceir_sdk.machine`."""

from __future__ import annotations

from ceir_sdk.machine import FEATURE_FLAGS, cpu_info, read_cpu_info

__all__ = ["FEATURE_FLAGS", "cpu_info", "read_cpu_info"]
