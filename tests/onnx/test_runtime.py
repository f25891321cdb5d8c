"""The torch-free runtime: tokenizer, preprocessing, checksums, providers, search, no-torch import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from ceir_onnx.runtime import ExactIndex, ProviderWarning, Runtime
from ceir_onnx.runtime.preprocess import PreprocessConfig, preprocess_one
from ceir_onnx.runtime.tokenizer import ClipTokenizer
from onnx_helpers import TORCH_BLOCKER, photo_like
from PIL import Image

from ceir_sdk.errors import BadInputError, IncompatibleFileError

TEXTS = [
    "a photo of a cat",
    "Striped FUR, green   grass!",
    "naïve café crème brûlée",
    "it's 3 o'clock; we'll see 12,345 birds",
    "emoji 🐱 and 漢字 and ümlaut",
    "&amp; html &lt;escaped&gt;",
    "",
    "word " * 100,  # longer than the context: truncated with the end token kept
]


def test_tokenizer_matches_open_clip() -> None:
    import open_clip

    ours = ClipTokenizer(open_clip.tokenizer.default_bpe(), 77)(TEXTS)
    ref = open_clip.tokenize(TEXTS).numpy()
    assert ours.dtype == np.int64 and ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


def test_preprocess_matches_open_clip_transform(tmp_path: Path) -> None:
    import open_clip

    transform = open_clip.image_transform(224, is_train=False)
    cfg = PreprocessConfig(image_size=224)
    rng = np.random.default_rng(0)
    cases: list[Image.Image] = []
    for w, h in [(500, 375), (256, 256), (375, 500), (300, 301), (100, 80)]:
        cases.append(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    cases.append(Image.fromarray(photo_like(1)[0]).convert("L"))  # greyscale
    cases.append(Image.fromarray(photo_like(1)[0]).convert("RGBA"))
    Image.fromarray(photo_like(2)[1]).save(tmp_path / "p.jpg", quality=90)
    cases.append(Image.open(tmp_path / "p.jpg"))
    worst = 0.0
    for img in cases:
        ref = transform(img).numpy()
        ours = preprocess_one(img, cfg)
        assert ours.shape == ref.shape == (3, 224, 224)
        worst = max(worst, float(np.abs(ours - ref).max()))
    # measured: the same PIL calls give the same pixels, up to float rounding of the normalisation
    print(f"largest normalised pixel difference vs open_clip: {worst:.2e}")
    assert worst <= 1e-5


def test_tampered_bundle_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    with open(copy / "image.onnx", "r+b") as fh:  # flip one byte in the weights
        fh.seek(os.path.getsize(copy / "image.onnx") // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(IncompatibleFileError, match="does not match its checksum"):
        Runtime(copy)
    (copy / "image.onnx").unlink()
    with pytest.raises(IncompatibleFileError, match=r"missing image\.onnx"):
        Runtime(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleFileError, match="newer"):
        Runtime(copy)
    with pytest.raises(IncompatibleFileError, match="not a ceir ONNX bundle"):
        Runtime(tmp_path)


def test_missing_gpu_provider_warns_loudly(bundle: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA, so no fall-back to observe")
    with pytest.warns(ProviderWarning, match="CUDAExecutionProvider was requested but is NOT active"):
        rt = Runtime(bundle, providers="cuda")
    assert rt.providers == ["CPUExecutionProvider"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Runtime(bundle, providers="auto", threads=1)  # auto on a CPU build: nothing to warn about


def test_unknown_provider_names_are_refused_not_run_on_cpu(bundle: Path) -> None:
    from ceir_sdk.errors import BadInputError

    for typo in ("gpu", "CudaExecutionProvider", ["cuda:0", "cpu"]):
        with pytest.raises(BadInputError, match="unknown execution provider"):
            Runtime(bundle, providers=typo)


def test_fp16_on_a_provider_list_that_lands_on_cpu_does_not_crash(bundle: Path) -> None:
    """onnxruntime segfaulted here when the first provider listed was not CPU (checked in a
    child process, since a segfault would take the test runner down)."""
    import onnxruntime as ort

    first = next((p for p in ort.get_available_providers() if p != "CPUExecutionProvider"), None)
    if first is None:
        pytest.skip("this onnxruntime lists no provider besides CPU")
    code = textwrap.dedent(f"""
        import warnings, numpy as np
        warnings.simplefilter("ignore")
        from ceir_onnx.runtime import Runtime
        rt = Runtime({str(bundle)!r}, precision="fp16", providers=[{first!r}, "CPUExecutionProvider"])
        out = rt.embed(np.zeros((2, 32, 32, 3), np.uint8))
        print("rows", out.shape[0])
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert "rows 2" in result.stdout


def test_gpu_execution(bundle: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("no CUDA execution provider in this onnxruntime build (needs onnxruntime-gpu and a GPU)")
    rt = Runtime(bundle, providers="cuda", precision="fp16")
    if "CUDAExecutionProvider" not in rt.providers:
        pytest.skip("CUDA provider present but no usable GPU")
    cpu = Runtime(bundle, providers="cpu", precision="fp32")
    images = photo_like(5)
    a, b = rt.embed(images), cpu.embed(images)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.999


def test_explain_search_and_inputs(bundle: Path, tmp_path: Path) -> None:
    rt = Runtime(bundle, providers="cpu", batch_size=2)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, arr in enumerate(photo_like(5, seed=3)):
        Image.fromarray(arr).save(folder / f"{i}.png")
    concepts, latent = rt.embed(folder, output="both")
    assert concepts.shape == (5, len(rt.concepts)) and latent.shape[0] == 5
    expl = rt.explain(concepts=concepts, top_k=3)
    assert len(expl) == 5 and len(expl[0].top) == 3
    assert expl[0].top[0][1] == pytest.approx(float(concepts[0].max()))
    assert expl[0].absent[0][0].startswith("NOT ")
    index = rt.index(folder)
    scores, rows = rt.search(index, folder / "3.png", k=2)
    assert rows[0, 0] == 3 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    clip_index = rt.index(folder, space="clip")
    s, r = rt.search_text(clip_index, ["striped fur", "feathers"], k=5)
    assert r.shape == (2, 5) and np.all(np.diff(s, axis=1) <= 1e-6)
    assert rt.concept_similarity(folder, ["striped fur"]).shape == (5, 1)
    with pytest.raises(BadInputError, match="uint8"):  # floats are read as [0, 1], as the torch model reads them
        rt.embed([np.full((8, 8, 3), 2.0, np.float32)])
    with pytest.raises(BadInputError, match="not an image"):
        rt.embed([np.zeros((8, 8, 5), np.uint8)])
    with pytest.raises(BadInputError, match="one or more texts"):
        rt.embed_texts([])
    with pytest.raises(BadInputError, match="one or more texts"):
        rt.concept_similarity(folder, [])
    with pytest.raises(BadInputError, match="no such image"):
        rt.embed(tmp_path / "nope.jpg")
    with pytest.raises(BadInputError, match="no 'int4' image graph"):
        Runtime(bundle, precision="int4")


def test_exact_index_metrics() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    for metric in ("cosine", "ip", "l2"):
        idx = ExactIndex(metric=metric).add(x, ids=[f"id{i}" for i in range(50)])
        _, rows = idx.search(x[[7, 11]] * (1.0 if metric == "l2" else 2.0), k=3)
        assert list(rows[:, 0]) == [7, 11]
    with pytest.raises(BadInputError, match="dimension"):
        idx.search(x[:, :4], k=1)


def test_runtime_works_where_torch_cannot_be_imported(bundle: Path, tmp_path: Path) -> None:
    """Run the runtime in a fresh interpreter in which importing torch/open_clip raises."""
    expected = Runtime(bundle, providers="cpu").embed(photo_like(3, seed=9), output="all")
    np.savez(tmp_path / "images.npz", *photo_like(3, seed=9))
    script = TORCH_BLOCKER + textwrap.dedent(
        f"""
        try:
            import torch  # noqa
        except ImportError:
            pass
        else:
            raise SystemExit("the import blocker does not work")
        import numpy as np
        from ceir_onnx.runtime import Runtime
        rt = Runtime({str(bundle)!r}, providers="cpu", precision="int8")
        rt = Runtime({str(bundle)!r}, providers="cpu")
        images = np.load({str(tmp_path / "images.npz")!r})
        emb = rt.embed([images[f"arr_{{i}}"] for i in range(3)], output="all")
        np.save({str(tmp_path / "latent.npy")!r}, emb.latent)
        np.save({str(tmp_path / "text.npy")!r}, rt.embed_texts(["striped fur"]))
        print(rt.explain(concepts=emb.concepts[:1], top_k=1)[0].top[0][0])
        assert not any(m.split(".")[0] in ("torch", "open_clip") for m in sys.modules)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() in Runtime(bundle, providers="cpu").concepts
    np.testing.assert_allclose(np.load(tmp_path / "latent.npy"), expected.latent, atol=1e-5)


def test_folder_input_is_read_recursively(bundle: Path, tmp_path: Path) -> None:
    """One subfolder per class is the usual layout; every image in it must be embedded."""
    from ceir_onnx.runtime import Runtime
    from ceir_onnx.runtime.preprocess import iter_images
    from PIL import Image

    rng = np.random.default_rng(0)
    for i, sub in enumerate(["cats", "dogs/puppies", "."]):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / sub / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    files = iter_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in files] == ["2.png", "cats/0.png", "dogs/puppies/1.png"]
    latent = Runtime(bundle).embed(tmp_path)
    assert latent.shape[0] == 3


def test_unreadable_images_fail_or_are_skipped_as_chosen(bundle: Path, tmp_path: Path) -> None:
    from ceir_onnx.runtime import Runtime
    from PIL import Image

    from ceir_sdk.errors import BadInputError

    rng = np.random.default_rng(1)
    for name in ("a.png", "c.png"):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "b.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(BadInputError, match=r"b\.png"):
        Runtime(bundle).embed(tmp_path)
    runtime = Runtime(bundle, on_error="skip")
    latent = runtime.embed(tmp_path)
    assert latent.shape[0] == 2
    assert runtime.last_kept == [0, 2]
    assert [i for i, _ in runtime.last_skipped] == [1] and "b.png" in runtime.last_skipped[0][1]
    np.testing.assert_allclose(latent, Runtime(bundle).embed([tmp_path / "a.png", tmp_path / "c.png"]), atol=1e-6)
    per_call = Runtime(bundle).embed_all(tmp_path, on_error="skip")  # a per-call policy
    assert per_call.kept == [0, 2] and [i for i, _ in per_call.skipped] == [1]


def test_skip_bookkeeping_is_per_call_and_per_thread(bundle: Path, tmp_path: Path) -> None:
    """One runtime serving many threads: each call's rows map back to its own inputs."""
    import threading

    from ceir_onnx.runtime import Runtime
    from PIL import Image

    rng = np.random.default_rng(2)
    good = tmp_path / "good.png"
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG truncated")
    runtime = Runtime(bundle, on_error="skip", decode_workers=2)
    requests = {name: [good if (i + shift) % 3 else bad for i in range(n)]
                for name, n, shift in (("a", 5, 0), ("b", 7, 1), ("c", 4, 2))}
    seen: dict[str, list[tuple[list[int], list[int], list[int]]]] = {name: [] for name in requests}
    barrier = threading.Barrier(len(requests))

    def serve(name: str) -> None:
        barrier.wait()
        for _ in range(6):
            emb = runtime.embed_all(requests[name])
            seen[name].append((emb.kept, runtime.last_kept, [i for i, _ in runtime.last_skipped]))

    threads = [threading.Thread(target=serve, args=(name,)) for name in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, items in requests.items():
        expected_kept = [i for i, item in enumerate(items) if item == good]
        expected_skipped = [i for i, item in enumerate(items) if item == bad]
        assert seen[name] == [(expected_kept, expected_kept, expected_skipped)] * 6


def test_cpu_thread_pool_sleeps_unless_spinning_is_asked(bundle: Path) -> None:
    """Idle intra-op threads must not busy-wait by default: they would take the cores that the
    decode threads (embed) and other processes need. spinning=True restores onnxruntime's way."""
    key = "session.intra_op.allow_spinning"
    images = photo_like(3, seed=4)
    quiet = Runtime(bundle, providers="cpu", threads=2)
    feats = quiet.embed(images, output="all").image_features
    quiet.encode_features(feats)  # creates the head session with the same options
    for session in (quiet.image_session, quiet._graph_session("head", "test")):
        assert session.get_session_options().get_session_config_entry(key) == "0"
    spinning = Runtime(bundle, providers="cpu", threads=2, spinning=True)
    assert spinning.image_session.get_session_options().get_session_config_entry(key) == "1"
    np.testing.assert_allclose(spinning.embed(images), quiet.embed(images), atol=1e-6)


def test_exported_bundles_are_readable_by_other_accounts(tmp_path: Path) -> None:
    """A bundle exported by one account is served by another: no 0700 folder, no 0600 manifest."""
    import stat

    from ceir_onnx.bundle import MANIFEST, staged_directory

    from ceir_sdk.atomic import atomic_write_json

    previous = os.umask(0o022)
    try:
        with staged_directory(tmp_path / "bundle", overwrite=False) as stage:
            atomic_write_json(stage / MANIFEST, {"format": "x"})
    finally:
        os.umask(previous)
    out = tmp_path / "bundle"
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / MANIFEST).stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_graphs_opened_on_first_use_survive_chdir_and_refuse_a_swapped_bundle(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ceir_onnx.runtime import Runtime

    from ceir_sdk.errors import IncompatibleFileError

    copy = tmp_path / "served"
    shutil.copytree(bundle, copy)
    monkeypatch.chdir(tmp_path)
    rt = Runtime("served")  # relative, as a service started in its folder would say
    monkeypatch.chdir("/")  # the service daemonises
    _, latent = rt.encode_texts(["striped fur"])
    assert latent.shape[0] == 1

    swapped = Runtime(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    text_file = copy / manifest["graphs"]["text"]["variants"]["fp32"]["file"]
    text_file.write_bytes(text_file.read_bytes() + b"\0")  # re-exported in place after load
    with pytest.raises(IncompatibleFileError, match="changed after this runtime loaded"):
        swapped.encode_texts(["striped fur"])
    gone = Runtime(copy, verify=False)
    text_file.unlink()
    with pytest.raises(IncompatibleFileError, match="is gone"):
        gone.encode_texts(["striped fur"])


def test_every_file_of_a_real_bundle_follows_the_umask(bundle: Path) -> None:
    """safetensors writes 0600 on its own; the concepts file must be as readable as the graphs."""
    import stat

    from ceir_sdk.atomic import current_umask

    expected = 0o666 & ~current_umask()
    modes = {p.relative_to(bundle).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in bundle.rglob("*") if p.is_file()}
    assert "concepts.safetensors" in modes
    assert {name: mode for name, mode in modes.items() if mode != expected} == {}


def test_runtime_pixel_limit_per_runtime_and_per_call(bundle: Path, tmp_path: Path) -> None:
    from ceir_onnx.runtime import Runtime
    from PIL import Image

    from ceir_sdk.errors import BadInputError

    path = tmp_path / "40x40.png"
    Image.new("RGB", (40, 40), (30, 120, 200)).save(path)
    strict = Runtime(bundle, providers="cpu", max_pixels=1000)
    with pytest.raises(BadInputError, match="over the limit of 1,000"):
        strict.embed([path])
    assert strict.embed_all([path], max_pixels=2000).latent.shape[0] == 1  # raised for this call only
    with pytest.raises(BadInputError, match="over the limit of 1,000"):
        Runtime(bundle, providers="cpu").embed_all([path], max_pixels=1000)
