"""Pixel-limit messages in our own words, once (issue 21's hostile-user findings)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from image_zoo import _png_header_only

from ceir_sdk.data.images import LoadOptions, load_image_file
from ceir_sdk.errors import BadInputError


def _header(tmp_path: Path, name: str, width: int, height: int) -> Path:
    path = tmp_path / name
    path.write_bytes(_png_header_only(width, height))
    return path


def test_image_between_pils_warning_and_error_limits_is_reported_once_in_our_words(tmp_path: Path) -> None:
    big = _header(tmp_path, "big.png", 10_000, 9_500)  # 95 Mpx: over PIL's 89.5 Mpx warning, under its error
    code = textwrap.dedent(f"""
        from ceir_sdk.data.images import load_image_file
        try:
            load_image_file({str(big)!r})
        except Exception as exc:
            print("ERROR:", exc)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "DecompressionBombWarning" not in done.stderr and "warnings.warn(" not in done.stderr, done.stderr
    assert done.stdout.count("ERROR:") == 1 and "10000x9500 = 95,000,000 pixels, over the limit" in done.stdout


def test_pil_refusal_is_said_in_our_words_with_the_argument_name(tmp_path: Path) -> None:
    bomb = _header(tmp_path, "bomb.png", 20_000, 10_000)  # 200 Mpx: PIL refuses to open it
    with pytest.raises(BadInputError) as caught:
        load_image_file(bomb)
    text = str(caught.value)
    assert "DOS attack" not in text and "could be decompression bomb" not in text
    assert "200,000,000 pixels" in text and "possible decompression bomb" in text
    assert "max_pixels=" in text  # what a Python caller passes
    # every sentence after a full stop starts with a capital letter
    sentences = [s for s in text.split(". ")[1:] if s]
    assert sentences and all(s[0].isupper() for s in sentences), text


def test_over_our_limit_says_the_argument_and_the_option(tmp_path: Path) -> None:
    path = _header(tmp_path, "wide.png", 300, 200)
    with pytest.raises(BadInputError) as caught:
        load_image_file(path, LoadOptions(max_pixels=1000))
    text = str(caught.value)
    assert "over the limit of 1,000" in text and ". If the image is genuine, pass a higher max_pixels=N" in text
    assert "--max-pixels" in text
