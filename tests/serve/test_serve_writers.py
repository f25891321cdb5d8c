"""Writers: 4 HTTP clients x 50 items, plus a library writer on the same directory, lose nothing."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
from serve_helpers import Server, small_images

N_CLIENTS, PER_CLIENT, N_LIBRARY = 4, 50, 10


def _png_uri(img: Any) -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_concurrent_writers_lose_nothing(writable: Server, runtime: Any) -> None:
    from ceir_sdk.errors import ConflictError
    from ceir_sdk.index import ConceptIndex
    from ceir_sdk.index.commit import save_change

    index_dir: Path = writable.index_dir  # type: ignore[attr-defined]
    before = len(ConceptIndex.load(index_dir))
    images = small_images(N_CLIENTS * PER_CLIENT + N_LIBRARY, seed=7)
    uris = [_png_uri(im) for im in images[: N_CLIENTS * PER_CLIENT]]
    errors: list[str] = []
    ids: list[int] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        with httpx.Client(base_url=writable.url, timeout=120) as http:
            for j in range(PER_CLIENT):
                n = c * PER_CLIENT + j
                r = http.post("/v1/items", json={"items": [{"image": uris[n], "key": f"c{c}-{j}",
                                                            "fields": {"client": c}}]})
                with lock:
                    if r.status_code != 200:
                        errors.append(r.text)
                    else:
                        ids.extend(r.json()["ids"])

    def library_writer() -> None:
        # Another process's way in: load, add, save, with the library's retry on another
        # writer's save (ceir_sdk.index.commit.save_change: reload and add again, backing off).
        acts, lat = runtime.embed(images[N_CLIENTS * PER_CLIENT:], output="both")
        for i in range(N_LIBRARY):
            def add(idx: ConceptIndex, i: int = i) -> Any:
                return idx.add(lat[i:i + 1], acts[i:i + 1], metadata=[{"key": f"lib-{i}"}])

            try:
                save_change(ConceptIndex.load(index_dir), index_dir, add, lambda: ConceptIndex.load(index_dir),
                            within_s=120)
            except ConflictError as e:
                errors.append(f"library item {i} never saved: {e}")

    threads = [threading.Thread(target=client, args=(c,)) for c in range(N_CLIENTS)]
    threads.append(threading.Thread(target=library_writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(ids) == len(set(ids)) == N_CLIENTS * PER_CLIENT
    saved = ConceptIndex.load(index_dir)
    saved.check()
    assert len(saved) == before + N_CLIENTS * PER_CLIENT + N_LIBRARY
    keys = {r["key"] for r in saved.get(saved.ids)}
    assert {f"c{c}-{j}" for c in range(N_CLIENTS) for j in range(PER_CLIENT)} <= keys
    assert {f"lib-{i}" for i in range(N_LIBRARY)} <= keys


def test_delete_removes_and_unknown_is_404(writable: Server) -> None:
    r = httpx.post(f"{writable.url}/v1/items", json={"items": [{"image": _png_uri(small_images(1, seed=99)[0]),
                                                                "key": "to-delete"}]}, timeout=60)
    assert r.status_code == 200, r.text
    new_id = r.json()["ids"][0]
    r = httpx.delete(f"{writable.url}/v1/items/{new_id}", timeout=60)
    assert r.status_code == 200 and r.json()["removed"] == new_id
    r = httpx.delete(f"{writable.url}/v1/items/{new_id}", timeout=60)
    assert r.status_code == 404 and "not in the index" in r.json()["error"]["message"]
    r = httpx.post(f"{writable.url}/v1/items", json={"items": [{"image": _png_uri(small_images(1, seed=98)[0]),
                                                                "key": "img000.png"}]}, timeout=60)
    assert r.status_code == 400 and "unique" in r.json()["error"]["message"], r.text
