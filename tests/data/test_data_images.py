"""Robust decoding: every awkward-but-valid image becomes RGB; every broken one a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from image_zoo import BAD, GOOD
from PIL import Image

from ceir_sdk.data import ImageLoadError, LoadOptions, array_to_rgb, load_image_file
from ceir_sdk.errors import BadInputError


@pytest.mark.parametrize("name", sorted(GOOD))
def test_valid_images_of_every_mode_become_rgb(zoo: Path, name: str) -> None:
    img, note = load_image_file(zoo / name)
    assert img.mode == "RGB"
    assert img.size == (40, 30)
    arr = np.asarray(img)
    assert arr.dtype == np.uint8 and arr.shape == (30, 40, 3)
    if name != "rgb.png":
        assert note, f"{name}: the conversion should be named"


def test_sixteen_bit_is_rescaled_not_clipped(zoo: Path) -> None:
    arr = np.asarray(load_image_file(zoo / "gray16.png")[0])[0, :, 0].astype(int)
    # A 0..65535 ramp must come out as a 0..255 ramp (PIL's plain convert would saturate at 255).
    assert arr[0] == 0 and arr[-1] == 255
    assert 100 < arr[20] < 160
    assert np.all(np.diff(arr) >= 0)


def test_float_image_in_unit_range_is_scaled(zoo: Path) -> None:
    arr = np.asarray(load_image_file(zoo / "float.tif")[0])[0, :, 0].astype(int)
    assert arr[0] == 0 and arr[-1] == 255


def test_alpha_is_composited_onto_the_background(zoo: Path) -> None:
    arr = np.asarray(load_image_file(zoo / "rgba.png")[0])
    assert tuple(arr[0, 0]) == (255, 255, 255)  # transparent: background, not the hidden red
    assert tuple(arr[0, 39]) == (255, 0, 0)
    black = np.asarray(load_image_file(zoo / "rgba.png", LoadOptions(background=(0, 0, 0)))[0])
    assert tuple(black[0, 0]) == (0, 0, 0)
    pal = np.asarray(load_image_file(zoo / "palette_alpha.png")[0])
    assert tuple(pal[5, 5]) == (255, 255, 255)


def test_cmyk_keeps_its_colour(zoo: Path) -> None:
    r, g, b = np.asarray(load_image_file(zoo / "cmyk.jpg")[0]).reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize(("name", "word"), sorted(BAD.items()))
def test_broken_files_raise_a_clear_error(zoo: Path, name: str, word: str) -> None:
    with pytest.raises(ImageLoadError) as info:
        load_image_file(zoo / name)
    message = str(info.value)
    assert name in message
    assert word in info.value.problem
    assert info.value.hint  # always a way out
    assert isinstance(info.value, BadInputError)


def test_pixel_limit_is_an_option(zoo: Path) -> None:
    with pytest.raises(ImageLoadError, match="over the limit of 1,000") as info:
        load_image_file(zoo / "rgb.png", LoadOptions(max_pixels=1000))
    assert "max_pixels" in info.value.hint
    assert load_image_file(zoo / "rgb.png", LoadOptions(max_pixels=1200))[0].size == (40, 30)
    with pytest.raises(BadInputError, match="max_pixels must be positive"):
        LoadOptions(max_pixels=0)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image_file(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image_file(tmp_path)


def test_arrays_of_each_kind() -> None:
    gray = np.full((8, 9), 7, np.uint8)
    assert np.asarray(array_to_rgb(gray)[0]).shape == (8, 9, 3)
    assert np.asarray(array_to_rgb(gray[..., None])[0])[0, 0, 0] == 7
    unit = np.ones((8, 9, 3), np.float32) * 0.5
    assert np.asarray(array_to_rgb(unit)[0])[0, 0, 0] in (127, 128)
    deep = np.full((8, 9, 3), 65535, np.uint16)
    assert np.asarray(array_to_rgb(deep)[0])[0, 0, 0] == 255
    rgba = np.zeros((8, 9, 4), np.uint8)
    assert tuple(np.asarray(array_to_rgb(rgba)[0])[0, 0]) == (255, 255, 255)
    with pytest.raises(ImageLoadError, match=r"values in \[0, 255\]"):
        array_to_rgb(np.full((8, 9, 3), 255.0))
    with pytest.raises(ImageLoadError, match="not an image"):
        array_to_rgb(np.zeros((3, 8, 9, 2), np.uint8))
    with pytest.raises(ImageLoadError, match="NaN"):
        array_to_rgb(np.full((8, 9, 3), np.nan, np.float32))


def test_multi_frame_uses_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    img, note = load_image_file(tmp_path / "anim.gif")
    assert "first frame" in note
    assert np.asarray(img)[0, 0, 0] > 200
