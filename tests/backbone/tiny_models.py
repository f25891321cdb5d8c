"""Tiny open_clip architectures for tests: real open_clip code, seconds on a CPU."""

from __future__ import annotations

from typing import Any

TINY = "ceir-test-tiny"
TINY_OTHER = "ceir-test-tiny-wide"
CONFIGS: dict[str, dict[str, Any]] = {
    TINY: {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    },
    TINY_OTHER: {
        "embed_dim": 48,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 48, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 48, "heads": 2, "layers": 1},
    },
}
