from __future__ import annotations

import numpy as np

from ceir_sdk.worlds import World
from ceir_sdk.worlds.render import render, shape_mask
from ceir_sdk.worlds.vocabulary import COLOURS, SHAPES


def test_families_and_all_concepts() -> None:
    w = World("world100_20")
    fam = w.oracle.families()
    assert {"shape", "colour", "pattern", "size", "scene", "around", "superclass"} <= set(fam)
    flat = [c for cs in fam.values() for c in cs]
    assert len(flat) == len(set(flat)), "a phrase belongs to exactly one family"
    assert w.oracle.all_concepts() == sorted(flat)
    assert all(c == c.strip().lower() and len(c) <= 30 for c in flat)
    assert not set(flat) & set(w.fine_names), "class names are not concepts"


def test_class_concepts_three_kinds() -> None:
    w = World("world10")
    lady = w.oracle.class_concepts("ladybug")
    assert set(lady) == {"features", "superclasses", "around"}
    assert {"red", "round", "dotted", "small"} <= set(lady["features"])
    assert "an insect" in lady["superclasses"]
    assert {"grass", "a flower"} <= set(lady["around"])
    every = set(w.oracle.all_concepts())
    for name in w.class_names:
        cc = w.oracle.class_concepts(name)
        assert all(set(v) <= every for v in cc.values())


def test_coarse_class_concepts_union_of_members() -> None:
    w = World("world100_20")
    insects = w.oracle.class_concepts("insects")
    for fine in ("ladybug", "bee", "butterfly"):
        for kind, values in w.oracle.class_concepts(fine).items():
            assert set(values) <= set(insects[kind])


def test_class_concepts_match_sampled_frequencies() -> None:
    # The oracle's top feature per family is the most frequent drawn value of that class.
    w = World("world10")
    counts: dict[str, dict[str, int]] = {}
    for b in w.batches(500, "train", batch_size=500):
        for lab, fam in zip(b.labels, b.families, strict=True):
            if w.class_names[int(lab)] == "bee":
                c = counts.setdefault(str(fam["shape"]), {})
                c[str(fam["colour"])] = c.get(str(fam["colour"]), 0) + 1
    assert max(counts, key=lambda k: sum(counts[k].values())) == "oval"
    assert w.oracle.class_concepts("bee")["features"][0] == "oval"


def _render(**kw: object) -> np.ndarray:
    args: dict[str, object] = dict(
        shape="round", colour="red", pattern="plain", size="large", scene="snow", around=(), image_size=32
    )
    args.update(kw)
    return render(rng=np.random.default_rng(0), **args)  # type: ignore[arg-type]


def _near(img: np.ndarray, rgb: tuple[float, float, float], tol: float = 0.25) -> float:
    d = np.abs(img.astype(np.float64) / 255.0 - np.asarray(rgb)).max(-1)
    return float((d < tol).mean())


def test_rendered_colour_is_visible() -> None:
    for colour, rgb in COLOURS.items():
        if colour == "white":
            continue  # snow background is white too
        img = _render(colour=colour)
        assert _near(img, rgb) > 0.15, colour
        others = [n for n in COLOURS if n not in (colour, "white")]  # white: the snow
        # the drawn colour is the most present palette colour
        assert all(_near(img, rgb) > _near(img, COLOURS[o]) for o in others), colour


def test_rendered_size_and_pattern_and_around() -> None:
    red = COLOURS["red"]
    areas = [_near(_render(size=s), red) for s in ("small", "medium", "large")]
    assert areas[0] < areas[1] < areas[2]
    plain, striped = _near(_render(), red), _near(_render(pattern="striped"), red)
    assert striped < 0.75 * plain  # stripes replace part of the red with black
    sun = (1.0, 0.88, 0.15)
    assert _near(_render(around=("the sun",)), sun, 0.15) > _near(_render(), sun, 0.15) + 0.01


def test_shapes_differ() -> None:
    g = (np.arange(64, dtype=np.float32) + 0.5) / 32 - 1
    v, u = np.meshgrid(g, g, indexing="ij")
    masks = {s: shape_mask(s, u, v, 0.6) for s in SHAPES}
    for a in SHAPES:
        assert masks[a].mean() > 0.05
        for b in SHAPES:
            if a < b:
                assert (masks[a] != masks[b]).mean() > 0.02, (a, b)
