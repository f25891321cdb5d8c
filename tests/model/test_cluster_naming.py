"""Cluster names: lift ranking, with descriptive phrases replaced by the general concept behind them."""

from __future__ import annotations

import numpy as np

from ceir_sdk.concepts.generality import GeneralityIndex, content_words, rank_general_first
from ceir_sdk.model.cluster import name_clusters

CONCEPTS = ["yellow striped oval", "yellow", "striped", "a fruit", "round fruit", "oval", "yellow striped"]


def test_content_words_drop_articles_case_and_punctuation() -> None:
    assert content_words("A Red, dotted  ladybug") == frozenset({"red", "dotted", "ladybug"})
    assert content_words("the sky") == content_words("sky")
    assert content_words("star-shaped") == frozenset({"star-shaped"})


def test_more_general_concepts_are_strict_word_subsets() -> None:
    index = GeneralityIndex(CONCEPTS)
    found = {CONCEPTS[j] for j in index.more_general(CONCEPTS.index("yellow striped oval"))}
    assert found == {"yellow", "striped", "oval", "yellow striped"}
    assert {CONCEPTS[j] for j in index.more_general(CONCEPTS.index("round fruit"))} == {"a fruit"}
    assert index.more_general(CONCEPTS.index("yellow")) == []


def test_a_phrase_gives_way_to_the_general_concept_that_keeps_its_score() -> None:
    index = GeneralityIndex(CONCEPTS)
    scores = np.array([2.0, 1.2, 0.3, 0.5, 0.9, 0.1, 1.5])
    ranked = [CONCEPTS[i] for i in rank_general_first(scores, index, top=4)]
    # "yellow striped oval" (2.0) -> "yellow" (1.2 >= 0.5 * 2.0); "striped" (0.3) is too weak to stand in
    assert ranked == ["yellow", "a fruit", "striped", "oval"]
    # a stricter share keeps the phrase: "yellow" holds 0.6 of its score, not 0.7
    assert CONCEPTS[rank_general_first(scores, index, top=1, keep=0.7)[0]] == "yellow striped"


def test_negative_scores_are_never_generalised() -> None:
    index = GeneralityIndex(CONCEPTS)
    scores = -np.ones(len(CONCEPTS))
    assert index.generalise(0, scores) == 0


def _cluster_of_yellow_things(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cluster 0: yellow things, a third of them striped; cluster 1: the rest. Each phrase's
    activation sums its words' evidence; single words are read more noisily than descriptions,
    so "yellow striped oval" out-lifts "yellow" although most members are neither striped nor oval."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n)
    evidence = {
        "yellow": np.r_[np.ones(n), np.zeros(n)],
        "striped": (rng.random(2 * n) < 1 / 3).astype(float),
        "oval": (rng.random(2 * n) < 0.3).astype(float),
        "fruit": np.zeros(2 * n),
        "round": np.zeros(2 * n),
    }
    columns = []
    for concept in CONCEPTS:
        words = content_words(concept)
        noise_sd = 0.8 if len(words) == 1 else 0.2
        columns.append(sum(evidence[w] for w in words) + noise_sd * rng.standard_normal(2 * n))
    acts = np.stack(columns, axis=1)
    z = (acts - acts.mean(0)) / acts.std(0)
    return labels, z.astype(np.float32)


def test_clusters_are_named_by_what_their_members_share() -> None:
    labels, z = _cluster_of_yellow_things()
    by_lift = name_clusters(labels, z, CONCEPTS, 2, keep=1.0)
    named = name_clusters(labels, z, CONCEPTS, 2)
    assert by_lift[0][0][0] != "yellow"  # a longer phrase with "yellow" in it out-lifts the word itself
    assert named[0][0][0] == "yellow"
    # scores stay each concept's own lift, and no concept is listed twice
    lift = z[labels == 0].mean(0) - z.mean(0)
    for phrase, score in named[0]:
        assert score == np.float32(lift[CONCEPTS.index(phrase)])
    assert len({p for p, _ in named[0]}) == len(named[0])


def test_the_index_names_clusters_the_same_way() -> None:
    from ceir_sdk.index.explain import name_clusters as index_names

    labels, z = _cluster_of_yellow_things()
    names, tops = index_names(z, labels, 2, CONCEPTS)
    assert names[0].split(", ")[0] == "yellow"
    assert tops[0][0][0] != "yellow"  # the raw ranking is still reported as is


def test_negated_phrases_neither_need_nor_give_way_to_their_words() -> None:
    concepts = ["striped", "not striped", "wings", "without wings", "no stripes", "stripes"]
    index = GeneralityIndex(concepts)
    for phrase in ("not striped", "without wings", "no stripes"):
        assert index.more_general(concepts.index(phrase)) == []
    scores = np.array([0.9, 1.0, 0.9, 0.5, 0.4, 0.3])
    assert concepts[rank_general_first(scores, index, top=1)[0]] == "not striped"


def test_long_phrases_are_compared_with_every_concept() -> None:
    long_phrase = "small bright red dotted round shiny smooth hard beetle shell"
    concepts = ["red", "beetle shell", "blue", long_phrase]
    index = GeneralityIndex(concepts)
    assert sorted(concepts[j] for j in index.more_general(3)) == ["beetle shell", "red"]


def test_asking_for_no_names_gives_none() -> None:
    index = GeneralityIndex(CONCEPTS)
    assert rank_general_first(np.ones(len(CONCEPTS)), index, top=0, pool=5) == []


def test_with_presence_names_follow_what_members_show_more_often_than_others() -> None:
    # cluster 0: "red" lifts most (a few members glow red), but every member is "round", half of the rest are
    concepts = ["red", "round", "grass"]
    labels = np.repeat([0, 1], 10)
    z = np.zeros((20, 3), dtype=np.float32)
    z[:2, 0] = 10.0  # two bright red members
    z[:10, 1] = 1.0
    z[10:15, 1] = 1.0
    present = z > 0.5
    assert name_clusters(labels, z, concepts, 2)[0][0][0] == "red"
    ordered = name_clusters(labels, z, concepts, 2, present=present)[0]
    assert [c for c, _ in ordered[:2]] == ["round", "red"]
    lift = z[:10].mean(0) - z.mean(0)
    assert ordered[0][1] == np.float32(lift[1])  # the score is still the activation lift
