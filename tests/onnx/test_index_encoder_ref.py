"""An index remembers how its items were embedded (issue 19): the int8 graph that built it is the
graph its queries run, from the CLI and from Python, and `index add` reconciles in the library."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from onnx_helpers import photo_like
from PIL import Image

from ceir_sdk.errors import BadInputError


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "imgs"
    out.mkdir()
    for i, image in enumerate(photo_like(5, seed=3)):
        Image.fromarray(np.asarray(image)).save(out / f"{i}.png")
    return out


def _build(bundle: Path, folder: Path, ix: Path, *extra: str) -> None:
    from ceir_sdk.cli.main import build

    result = CliRunner().invoke(build(), ["index", "build", str(ix), str(folder), "--model", str(bundle),
                                          "--providers", "cpu", "--no-tune", *extra])
    assert result.exit_code == 0, result.output + repr(result.exception)


def test_an_int8_index_is_queried_with_the_int8_graph(bundle: Path, folder: Path, tmp_path: Path) -> None:
    from ceir_sdk.index import ConceptIndex

    ix = tmp_path / "ix"
    _build(bundle, folder, ix, "--precision", "int8")
    idx = ConceptIndex.load(ix)
    assert idx.encoder.runtime.precision == "int8"  # type: ignore[union-attr]
    files = sorted(folder.iterdir())
    _, latents = idx.encoder.encode_images([str(f) for f in files])
    # The same batch queried gives the stored vectors: the same graph ran both times (the fp32
    # graph misses them by more than 1e-5, see test_end_to_end). int8 quantizes activations per
    # batch, so this compares whole batches, not one image against a batch.
    np.testing.assert_allclose(latents, idx.vectors_of(np.arange(len(files))), atol=1e-5)


def test_cli_search_without_precision_uses_the_recorded_graph(bundle: Path, folder: Path, tmp_path: Path) -> None:
    from ceir_sdk.cli.main import build

    ix = tmp_path / "ix"
    _build(bundle, folder, ix, "--precision", "int8")
    image = sorted(folder.iterdir())[1]

    def search(*extra: str) -> list[dict[str, object]]:
        args = ["index", "search", str(ix), "--image", str(image), "-k", "5", "--json", *extra]
        result = CliRunner().invoke(build(), args)
        assert result.exit_code == 0, result.output + repr(result.exception)
        return [{"id": h["id"], "score": h["score"]} for h in json.loads(result.output)]

    recorded, int8, fp32 = search(), search("--precision", "int8"), search("--precision", "fp32")
    assert recorded == int8
    assert recorded != fp32  # the scores of the two graphs differ in the last digits at least


def test_encoder_ref_round_trips_and_honours_providers(bundle: Path, tmp_path: Path) -> None:
    from ceir_onnx.export import OnnxExporter

    from ceir_sdk.contracts import BundleReader
    from ceir_sdk.index import EncoderRef

    exporter = OnnxExporter()
    assert isinstance(exporter, BundleReader) and exporter.recognises(bundle) and not exporter.recognises(tmp_path)
    ref = EncoderRef.for_model(bundle, precision="int8", providers="cpu")
    assert ref.fingerprint == exporter.fingerprint(bundle)
    assert ref.kind == "onnx-bundle" and ref.fingerprint and ref.path == str(bundle.resolve())
    again = EncoderRef.from_json(ref.to_json())
    assert again == ref
    enc = again.load()
    assert enc.runtime.precision == "int8"  # type: ignore[attr-defined]
    # an index saved before EncoderRef existed wrote a plain dict with no precision: it reads back
    old = EncoderRef.from_json({"kind": "onnx-bundle", "path": str(bundle), "fingerprint": None})
    assert old.precision is None and old.runtime_options() == {}


def test_add_reconciles_model_and_precision_in_the_library(bundle: Path, folder: Path, tmp_path: Path) -> None:
    from ceir_sdk.index import ConceptIndex

    ix = tmp_path / "ix"
    _build(bundle, folder, ix, "--precision", "int8")
    idx = ConceptIndex.load(ix)
    enc = idx.encoder_for_add()
    assert enc.runtime.precision == "int8"  # type: ignore[attr-defined]
    with pytest.warns(RuntimeWarning, match="mixes latents of two graphs"):
        enc = idx.encoder_for_add(precision="fp32")
    assert enc.runtime.precision == "fp32"  # type: ignore[attr-defined]
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"format": "ceir-model", "files": {"weights.safetensors": {"sha256": "x"}}}')
    with pytest.raises(BadInputError, match="not the model this index was built with"):
        idx.encoder_for_add(str(other))
