"""The HTTP API against the library: a real server on loopback, real clients (httpx, the openai SDK)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serve_helpers import Server, data_uri

TEXTS = ["a striped cat", "feathers on a runway", "green grass"]


def post(srv: Server, path: str, body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(f"{srv.url}{path}", json=body, timeout=60, **kw)


def test_openai_client_embeddings_equal_runtime_encode_texts(server: Server, runtime: Any) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    _, want = runtime.encode_texts(TEXTS)
    got = client.embeddings.create(model="tiny", input=TEXTS)  # the SDK asks for base64 by default
    assert [d.index for d in got.data] == [0, 1, 2]
    np.testing.assert_allclose(np.array([d.embedding for d in got.data]), want, atol=1e-5)
    floats = client.embeddings.create(model="tiny", input=TEXTS[0], encoding_format="float")
    np.testing.assert_allclose(np.array(floats.data[0].embedding), want[0], atol=1e-5)
    tokens = runtime.tokenizer(TEXTS)
    assert got.usage.prompt_tokens == int(np.count_nonzero(tokens)) == got.usage.total_tokens


def test_image_embeddings_equal_runtime_embed(server: Server, runtime: Any, image_files: list[Path]) -> None:
    files = image_files[:5]
    want_c, want_l = runtime.embed([str(p) for p in files], output="both")
    items = [{"modality": "image", "image": data_uri(p)} for p in files]
    r = post(server, "/v1/embeddings", {"model": "tiny", "input": items})
    assert r.status_code == 200, r.text
    got = np.array([d["embedding"] for d in r.json()["data"]])
    assert np.abs(got - want_l).max() <= 1e-5
    assert r.json()["usage"]["images"] == 5
    # infinity's form: every string an image; plain base64 without the data-URI prefix; concept space
    plain = [base64.b64encode(p.read_bytes()).decode() for p in files[:2]]
    r = post(server, "/v1/embeddings", {"input": plain, "modality": "image", "space": "concepts",
                                        "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    got = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in r.json()["data"]])
    assert np.abs(got - want_c[:2]).max() <= 1e-5


def test_mixed_text_and_image_input_keeps_order(server: Server, runtime: Any, image_files: list[Path]) -> None:
    r = post(server, "/v1/embeddings", {"input": ["a striped cat", {"modality": "image", "image": data_uri(
        image_files[0])}, {"modality": "text", "text": "green grass"}]})
    assert r.status_code == 200, r.text
    got = np.array([d["embedding"] for d in r.json()["data"]])
    _, texts = runtime.encode_texts(["a striped cat", "green grass"])
    image = runtime.embed(str(image_files[0]))
    np.testing.assert_allclose(got[[0, 2]], texts, atol=1e-5)
    np.testing.assert_allclose(got[1], image[0], atol=1e-5)


def test_explain_equals_runtime_explain(server: Server, runtime: Any, image_files: list[Path]) -> None:
    files = image_files[:3]
    r = post(server, "/v1/explain", {"input": [data_uri(p) for p in files], "top_k": 4})
    assert r.status_code == 200, r.text
    want = runtime.explain([str(p) for p in files], top_k=4)
    for got, exp in zip(r.json()["data"], want, strict=True):
        for part in ("present", "top", "absent"):
            assert [d["concept"] for d in got[part]] == [c for c, _ in getattr(exp, part)]
            np.testing.assert_allclose([d["z"] for d in got[part]], [v for _, v in getattr(exp, part)], atol=1e-5)


def _same_hits(got: list[dict[str, Any]], want: list[Any]) -> None:
    assert [h["id"] for h in got] == [h.id for h in want]
    np.testing.assert_allclose([h["score"] for h in got], [h.score for h in want], atol=1e-5)
    for g, w in zip(got, want, strict=True):
        assert [c for c, _ in g["concepts"]] == [c for c, _ in w.concepts]
        assert g["key"] == w.key and g["fields"] == w.fields


def test_search_answers_equal_the_library(server: Server, runtime: Any, index_dir: Path,
                                          image_files: list[Path]) -> None:
    from ceir_sdk.index import ConceptIndex

    index = ConceptIndex.load(index_dir, encoder=runtime)
    r = post(server, "/v1/search", {"text": "a striped cat", "k": 5})
    assert r.status_code == 200, r.text
    _same_hits(r.json()["data"], index.search_text("a striped cat", 5)[0])

    r = post(server, "/v1/search", {"image": data_uri(image_files[7]), "k": 4, "where": {"split": "odd"}})
    assert r.status_code == 200, r.text
    _same_hits(r.json()["data"], index.search_images([str(image_files[7])], 4, where={"split": "odd"})[0])
    assert all(h["fields"]["split"] == "odd" for h in r.json()["data"])

    expr = "+striped fur -green grass"
    r = post(server, "/v1/search", {"concepts": expr, "k": 5, "strict": False})
    assert r.status_code == 200, r.text
    want = index.search_concepts(expr, 5, strict=False)
    assert [h["id"] for h in r.json()["data"]] == [h.id for h in want]
    assert [h["matched"] for h in r.json()["data"]] == [h.matched for h in want]

    r = post(server, "/v1/search", {"item_id": 3, "add": ["feathers"], "remove": ["green grass"], "k": 5})
    assert r.status_code == 200, r.text
    _same_hits(r.json()["data"], index.search_like(3, 5, add=["feathers"], remove=["green grass"]))
    assert 3 not in [h["id"] for h in r.json()["data"]]


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"text": "a", "image": "abc"}, 422, "exactly one"),
    ({}, 422, "exactly one"),
    ({"concepts": "+no such concept"}, 400, "no such concept"),
    ({"item_id": 99999}, 404, "not in the index"),
    ({"text": "cat", "add": ["feathers"]}, 422, "item_id"),
    ({"text": "cat", "k": 100000}, 422, "k"),
    ({"text": "cat", "k": 500}, 400, "k=500"),
    ({"text": "cat", "where": {"split": {"$regex": "x"}}}, 400, "$regex"),
])
def test_bad_searches_are_named(server: Server, body: dict[str, Any], status: int, words: str) -> None:
    r = post(server, "/v1/search", body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]


def test_errors_are_json_naming_the_problem(server: Server) -> None:
    cases = [
        (httpx.get(f"{server.url}/nope"), 404, "/docs"),
        (httpx.get(f"{server.url}/v1/embeddings"), 405, "method"),
        (httpx.post(f"{server.url}/v1/embeddings", content=b"{not json", headers={"content-type": "application/json"}),
         422, "JSON"),
        (post(server, "/v1/embeddings", {"input": "cat", "model": "gpt-4"}), 404, "'tiny'"),
        (post(server, "/v1/embeddings", {"input": []}), 400, "empty"),
        (post(server, "/v1/embeddings", {"input": ["  "]}), 400, "empty text"),
        (post(server, "/v1/embeddings", {"input": ["x"] * 17}), 413, "at most 16"),
        (post(server, "/v1/embeddings", {"input": "cat", "dimensions": 3}), 400, "dimensions"),
        (post(server, "/v1/embeddings", {"input": "http://example.com/a.png", "modality": "image"}), 422, "URL"),
        (post(server, "/v1/embeddings", {"input": "@@@@", "modality": "image"}), 422, "base64"),
        (post(server, "/v1/embeddings", {"input": "data:image/png,abc", "modality": "image"}), 422, "base64"),
        (post(server, "/v1/items", {"items": []}), 403, "--allow-writes"),
        (httpx.delete(f"{server.url}/v1/items/1"), 403, "--allow-writes"),
        (httpx.post(f"{server.url}/v1/embeddings", content=b"x" * (3 * 1024 * 1024),
                    headers={"content-type": "application/json"}), 413, "limit"),
    ]
    for r, status, words in cases:
        assert r.status_code == status, (r.request.url, r.text)
        body = r.json()
        assert words.lower() in body["error"]["message"].lower(), body
        assert "Traceback" not in r.text
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}


def test_streamed_body_over_the_limit_is_refused(server: Server) -> None:
    def chunks() -> Any:  # no Content-Length: the limit must hold while the body is read
        for _ in range(40):
            yield b" " * (100 * 1024)

    r = httpx.post(f"{server.url}/v1/embeddings", content=chunks(), headers={"content-type": "application/json"},
                   timeout=30)
    assert r.status_code == 413, r.text
    assert "limit" in r.json()["error"]["message"]


def test_bearer_token_from_the_environment(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEIR_SERVE_TEST_TOKEN", "s3cret-token")
    r = post(server, "/v1/embeddings", {"input": "cat"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "s3cret" not in r.text and "CEIR_SERVE_TEST_TOKEN" in r.json()["error"]["message"]
    assert post(server, "/v1/embeddings", {"input": "cat"},
                headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert post(server, "/v1/embeddings", {"input": "cat"},
                headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    assert httpx.get(f"{server.url}/health").status_code == 200  # probes stay open
    assert httpx.get(f"{server.url}/metrics").status_code == 401


def test_health_ready_models_docs_metrics(server: Server) -> None:
    ready = httpx.get(f"{server.url}/ready").json()
    assert ready["status"] == "ready" and ready["model"] == "tiny" and ready["index"]["count"] == 60
    assert httpx.get(f"{server.url}/v1/models").json()["data"][0]["id"] == "tiny"
    assert httpx.get(f"{server.url}/docs").status_code == 200
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert {"/v1/embeddings", "/v1/explain", "/v1/search", "/v1/items", "/v1/items/{item_id}"} <= set(paths)
    post(server, "/v1/embeddings", {"input": ["a cat", "a dog"]})
    text = httpx.get(f"{server.url}/metrics").text
    for name in ("ceir_requests_total", "ceir_request_seconds_bucket", "ceir_batch_size_bucket",
                 "ceir_queue_depth"):
        assert name in text, name
    assert 'ceir_requests_total{method="POST",route="/v1/embeddings",status="200"}' in text


def test_gpu_asked_and_missing_refuses_unless_fallback(bundle: Path) -> None:
    import onnxruntime as ort
    from ceir_serve import create_app

    from ceir_sdk.errors import BadInputError

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a CUDA build of onnxruntime")
    with pytest.warns(Warning), pytest.raises(BadInputError, match="--allow-cpu-fallback"):
        create_app(bundle, providers="cuda")
    with pytest.warns(Warning):
        app = create_app(bundle, providers="cuda", allow_cpu_fallback=True)
    assert app.state.engine.runtime.providers == ["CPUExecutionProvider"]
