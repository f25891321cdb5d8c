"""LLM-like descriptive concepts of the world and their ground truth."""

from __future__ import annotations

from ceir_sdk.worlds import World
from ceir_sdk.worlds.descriptions import class_descriptions, description_parts, expand_truth


def test_descriptions_combine_a_class_s_preferred_attributes() -> None:
    world = World("world10")
    ladybug = class_descriptions(world, "ladybug")
    assert ladybug["red dotted"] == frozenset({"red", "dotted"})
    assert ladybug["small round"] == frozenset({"small", "round"})
    assert "round insect" in ladybug and ladybug["round insect"] == frozenset({"round", "an insect"})
    features = set(world.oracle.class_concepts("ladybug")["features"])
    for phrase, parts in ladybug.items():
        assert parts - {"an insect", "an animal"} <= features, phrase


def test_a_description_is_true_exactly_when_all_its_parts_are() -> None:
    world = World("world10")
    parts = description_parts(world)
    for i in range(200):
        truth = world.sample(i, "test").concepts
        expanded = expand_truth(truth, parts)
        assert truth <= expanded
        for phrase in expanded - truth:
            assert parts[phrase] <= truth
        for phrase, needed in parts.items():
            if needed <= truth:
                assert phrase in expanded


def test_descriptions_give_a_realistic_number_of_concepts() -> None:
    # CEIR's LLM prompts yield about 200 concepts for a 10-class domain
    assert 100 <= len(description_parts(World("world10"))) <= 250
