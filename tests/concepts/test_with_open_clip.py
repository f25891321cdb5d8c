"""process_concepts with a real open_clip text encoder (a tiny random-weight architecture)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ceir_sdk.concepts import ConceptSet, process_concepts

TINY = "ceir-concepts-tiny"
CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture
def clip_host(plugin_host: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    open_clip = pytest.importorskip("open_clip")
    import ceir_open_clip.plugin

    (tmp_path / f"{TINY}.json").write_text(json.dumps(CONFIG))
    open_clip.add_model_config(tmp_path)
    monkeypatch.setenv("CEIR_FEATURE_CACHE", str(tmp_path / "feature-cache"))
    plugin_host.register(ceir_open_clip.plugin, name="open-clip")
    return plugin_host


def test_backbone_name_is_resolved_and_its_text_encoder_used(clip_host: Any) -> None:
    cs = ConceptSet.from_phrases(["striped fur", "a red shell", "grass", "wings"], class_names=["zebra", "bee"])
    out, steps = process_concepts(cs, backbone=f"open-clip:{TINY}", sentence_model=False)
    sim = steps[3].params["similarity"]
    assert sim["backbone"] == f"open-clip:{TINY}" and sim["sentence_model"] is None
    assert steps[2].params["similarity"]["backbone"] == f"open-clip:{TINY}"
    # every removal names a similarity at or above the cutoff, and counts add up
    for step in steps[2:]:
        assert step.before - step.after == len(step.removed)
        for item in step.removed:
            value = float(item["reason"].split()[1])
            assert value >= step.params["cutoff"]
    # a cutoff above any cosine removes nothing
    out, steps = process_concepts(cs, backbone=f"open-clip:{TINY}", sentence_model=False,
                                  class_sim_cutoff=1.01, duplicate_sim_cutoff=1.01)
    assert out.phrases == cs.phrases


def test_open_clip_self_similarity_is_one(clip_host: Any) -> None:
    from ceir_sdk import get_backbone
    from ceir_sdk.concepts.similarity import TextSimilarity

    sim = TextSimilarity(get_backbone(f"open-clip:{TINY}"), sentence_model=False)
    m = sim.matrix(["grass", "wings"], ["grass", "wings"])
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-5)
