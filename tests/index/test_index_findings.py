"""Hostile-user findings on the index (issue 21): each was accepted silently or said badly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ceir_sdk.errors import BadInputError
from ceir_sdk.index import ConceptIndex


@pytest.fixture
def ix(tmp_path: Path, collection: dict) -> str:
    from safetensors.numpy import save_file

    emb = tmp_path / "emb.safetensors"
    save_file({"latent": collection["latents"], "concepts": collection["activations"]}, str(emb),
              metadata={"concepts": json.dumps(collection["concepts"])})
    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(json.dumps({"n": i, "split": "test" if i % 2 else "train"}) + "\n"
                            for i in range(len(collection["latents"]))))
    out = str(tmp_path / "ix")
    r = _cli("index", "build", out, "--embeddings", str(emb), "--metadata", str(meta))
    assert r.exit_code == 0, r.output
    return out


def _cli(*args: str) -> object:
    from ceir_sdk.cli.main import build

    return CliRunner().invoke(build(), list(args))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_threshold_that_is_not_a_finite_number_is_refused(ix: str, value: str) -> None:
    r = _cli("index", "search", ix, "--concepts", "+striped", "--threshold", value)
    assert r.exit_code != 0 and "finite" in str(r.exception), r.output
    idx = ConceptIndex.load(ix)
    with pytest.raises(BadInputError, match="finite"):
        idx.search_concepts("+striped", 5, threshold=float(value))
    with pytest.raises(BadInputError, match="finite"):
        ConceptIndex(4, ["a"], presence_threshold=float(value))


@pytest.mark.parametrize(("where", "said"), [("id>abc", "integer id with text"),
                                             ("n>abc", "holds numbers, with text"),
                                             ("split<3", "holds text, with a number")])
def test_a_comparison_with_the_wrong_type_is_an_error_not_an_empty_answer(ix: str, where: str, said: str) -> None:
    r = _cli("index", "search", ix, "--like", "1", "--where", where)
    assert r.exit_code != 0 and said in str(r.exception), r.output
    ok = _cli("index", "search", ix, "--like", "1", "--where", "n>590", "--json")
    assert ok.exit_code == 0 and sorted(h["fields"]["n"] for h in json.loads(ok.stdout)) == list(range(591, 600))


def test_a_huge_expression_is_quoted_shortened_once(ix: str) -> None:
    r = _cli("index", "search", ix, "--concepts", "x" * 10_000)
    assert r.exit_code != 0
    text = str(r.exception)
    assert len(text) < 400 and "10,000 characters" in text, text[:300]
    r = _cli("index", "search", ix, "--concepts", "+striped -" + "y" * 10_000)
    assert r.exit_code != 0 and len(str(r.exception)) < 400
