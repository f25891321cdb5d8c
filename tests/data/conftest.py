"""Fixtures: the image zoo and a class-subfolder tree, generated fresh in tmp dirs."""

from __future__ import annotations

from pathlib import Path

import pytest
from image_zoo import make_zoo
from PIL import Image


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    return make_zoo(tmp_path / "zoo")


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    """Two class subfolders of small solid-colour images (ImageFolder layout)."""
    root = tmp_path / "classes"
    for label, colour in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        (root / label / "nested").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (24, 24), colour).save(root / label / f"{i}.png")
        Image.new("RGB", (24, 24), colour).save(root / label / "nested" / "deep.jpg")
    (root / "notes.txt").write_text("ignored\n")
    return root
