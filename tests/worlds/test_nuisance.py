"""World version 2's nuisances: independent of the class, drawn, captioned, never a concept."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ceir_sdk.worlds import DOMAINS, World
from ceir_sdk.worlds.captions import nuisance_caption
from ceir_sdk.worlds.descriptions import description_parts
from ceir_sdk.worlds.nuisance import (
    CAPTION_P,
    NUISANCE_FAMILIES,
    NUISANCE_P,
    NUISANCE_VALUES,
    apply_nuisances,
    neutral,
    nuisance_phrases,
)


def _chi_square_p(table: np.ndarray) -> float:
    from scipy.stats import chi2_contingency

    table = table[:, table.sum(0) > 0]
    return float(chi2_contingency(table)[1])


@pytest.mark.parametrize("domain", ["world10", "world100_20"])
def test_nuisances_independent_of_class(domain: str) -> None:
    """Chi-square over 10,000 samples per family: class and nuisance value are independent."""
    world = World(domain, 32, seed=0)
    n = 10_000
    labels = np.array([world.fine_label(i, "train") for i in range(n)])
    values = [world.nuisances(i, "train") for i in range(n)]
    k = len(world.fine_names)
    for family in NUISANCE_FAMILIES:
        names = NUISANCE_VALUES[family]
        table = np.zeros((k, len(names)))
        for lab, v in zip(labels, values, strict=True):
            table[lab, names.index(v[family])] += 1
        p = _chi_square_p(table)
        assert p > 1e-3, (family, p)
        # and each family shows a non-neutral value at its configured rate
        shown = 1 - table[:, 0].sum() / n
        assert abs(shown - NUISANCE_P[family]) < 0.02, (family, shown)


def test_a_sensitive_test_would_notice_dependence() -> None:
    """The chi-square check above can fail: a nuisance tied to the class is caught."""
    rng = np.random.default_rng(0)
    labels = rng.integers(10, size=10_000)
    tied = np.where(rng.random(10_000) < 0.1, labels % 3, rng.integers(3, size=10_000))
    table = np.zeros((10, 3))
    for lab, v in zip(labels, tied, strict=True):
        table[lab, v] += 1
    assert _chi_square_p(table) < 1e-6


def test_nuisances_deterministic_per_seed_and_drawn() -> None:
    w = World("world10", 32, seed=0)
    for i in range(40):
        s = w.sample(i, "val")
        assert s.nuisances == w.nuisances(i, "val")
        again = World("world10", 32, seed=0).sample(i, "val")
        assert np.array_equal(again.image, s.image) and again.nuisances == s.nuisances
    other = [World("world10", 32, seed=1).nuisances(i, "val") for i in range(40)]
    assert other != [w.nuisances(i, "val") for i in range(40)]
    # batches carry the same nuisances as single samples
    batch = next(w.batches(10, "val", batch_size=10))
    assert batch.nuisances == [w.nuisances(i, "val") for i in range(10)]


def test_every_nuisance_value_changes_the_pixels() -> None:
    image = World("world10", 32, seed=0).sample(3, "test").image
    for family, values in NUISANCE_VALUES.items():
        assert np.array_equal(apply_nuisances(image, {family: values[0]}, np.random.default_rng(0)), image)
        for value in values[1:]:
            out = apply_nuisances(image, {family: value}, np.random.default_rng(0))
            assert out.shape == image.shape and out.dtype == np.uint8
            assert np.abs(out.astype(int) - image.astype(int)).mean() > 1.0, (family, value)


def _words(phrase: str) -> set[str]:
    return set(re.findall(r"[a-z]+", phrase.lower()))


def test_no_nuisance_word_in_any_concept_list() -> None:
    """No concept source knows about nuisances: oracle lists, descriptions, the static source."""
    from ceir_static.source import WorldConceptSource

    nuisance_words = set()
    for _family, named in nuisance_phrases().items():
        for value, phrase in named.items():
            nuisance_words |= _words(value) | (_words(phrase) - {"a", "an", "of", "in", "with", "the", "at", "over",
                                                                 "it"})
    nuisance_words |= {"blurry", "grainy", "tilted", "watermark", "painting", "cartoon", "vintage", "night", "sunset",
                       "fog", "rain", "frame", "text", "dim", "bright", "photo"}
    assert "light" in nuisance_words and "vintage" in nuisance_words
    for domain in DOMAINS:
        world = World(domain, 32, seed=0)
        lists = [world.oracle.all_concepts(), list(description_parts(world))]
        source = WorldConceptSource(domain)
        lists.append([c.phrase for c in source.generate(world.class_names).concepts])
        for phrases in lists:
            for phrase in phrases:
                assert not _words(phrase) & nuisance_words, (domain, phrase)


def _names(caption: str, family: str, value: str) -> bool:
    phrase = nuisance_phrases()[family][value]
    if family in ("style", "camera"):
        # "a blurry painting of ...", "a vintage photo of ...", "a photo of ..."
        return re.search(r"(?<![\w-])" + re.escape(value) + r"(?![\w-])", caption) is not None
    return phrase in caption


def test_captions_name_each_nuisance_at_its_rate_and_never_falsely() -> None:
    w = World("world10", 32, seed=0)
    shown = {f: 0 for f in NUISANCE_FAMILIES}
    named = {f: 0 for f in NUISANCE_FAMILIES}
    for i in range(3000):
        s = w.sample(i, "train")
        for family in NUISANCE_FAMILIES:
            value = s.nuisances[family]
            for other in nuisance_phrases()[family]:
                if other != value and other != "photo":
                    assert not _names(s.caption, family, other), (family, other, s.caption)
            if value != neutral(family):
                shown[family] += 1
                named[family] += _names(s.caption, family, value)
        if s.nuisances["style"] not in ("photo", "vintage photo"):
            assert "photo" not in s.caption, s.caption
        if s.nuisances["style"] != "photo":
            assert "a photo of" not in s.caption, s.caption
    for family in NUISANCE_FAMILIES:
        rate = named[family] / shown[family]
        # CAPTION_P on ordinary captions; the short one-concept captions (12%) name none, and the
        # one-nuisance captions (8% of images with any) name one of the image's nuisances.
        assert 0.8 * CAPTION_P[family] < rate < CAPTION_P[family] + 0.05, (family, rate)


def test_one_nuisance_captions_read_as_prompts() -> None:
    assert nuisance_caption("style", "vintage photo") == "a vintage photo of an object."
    assert nuisance_caption("style", "painting") == "a painting of an object."
    assert nuisance_caption("camera", "blurry") == "a blurry picture of an object."
    assert nuisance_caption("lighting", "night") == "an object at night."
