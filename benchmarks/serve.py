"""`ceir serve` throughput, batching gain, latency and bad-input robustness (issue 20); writes
benchmarks/results/serve.json.

    python benchmarks/serve.py [--bundle DIR] [--quick] [--precision fp32] [--ray-replicas N] [--out PATH]

The bundle is the demo's (``ceir demo --out demo-out`` writes demo-out/bundle). One machine,
loopback: the server runs in its own process (``ceir serve``), the clients in this one (asyncio
+ aiohttp), one image per request (the case dynamic batching is for), PNG images drawn from the
demo's world. Figures:

- ``images_per_s``: served at concurrency 1, 8, 32, with dynamic batching (--max-batch-size 32,
  --max-wait-ms 5) and without (--max-batch-size 1: every request runs alone); and the runtime
  in process (``Runtime.embed`` on the same PNG files, batches of 32, the same precision);
- ``served_over_inprocess`` at 8 (bar >= 0.8), ``batching_gain`` at 8 (bar >= 2); also at 8 with
  16 images per request (``8_x16_per_request``), where HTTP's cost per image is 16 times smaller;
- ``latency_ms`` p50 / p99 at 8, batched (bar: p99 <= 3 x p50);
- ``errors``: a mixed run (good images and hostile ones: truncated, empty, not an image, a
  decompression bomb's header, bad base64): failed good requests (bar 0), hostile ones not
  answered 4xx, and whether the server was still up.

With ``--ray-replicas N``: what `ceir serve --ray --replicas N` costs at start-up (``ray_serve_start``).

``server_cpu_ms_per_image``: the server process's CPU time per image (all threads), beside
``inprocess_ms_per_image``; the gap is what HTTP, JSON, base64 and the event loop cost. The demo
model is tiny (well under a millisecond per image), so that gap dominates its served figures;
``vit_b_32`` repeats every figure on a ViT-B-32 bundle (random weights) whose cost dominates
HTTP's, as a deployed CLIP's does.

Client and server share this machine's cores, so served figures include the client's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "exporters/onnx/src", ROOT / "plugins/serve/src", Path(__file__).resolve().parent):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

BARS = {"served_over_inprocess_c8": (">=", 0.8), "batching_gain_c8": (">=", 2.0), "p99_over_p50_c8": ("<=", 3.0),
        "failed_good_requests": ("<=", 0)}
CONCURRENCY = (1, 8, 32)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def world_pngs(n: int, image_size: int, out: Path) -> list[Path]:
    """Images of the demo's world, as PNG files (what a client would send)."""
    from PIL import Image

    from ceir_sdk.worlds import World

    # The world draws 32 or 64 px; a bigger model's images are the 64 px ones scaled up (what a
    # client of a 224 px model sends is that size, and decoding it is part of the served cost).
    world = World("world10", image_size=image_size if image_size in (32, 64) else 64, seed=0)
    paths: list[Path] = []
    for batch in world.batches(n, split="test", batch_size=256):
        for img in batch.images:
            p = out / f"img{len(paths):05d}.png"
            picture = Image.fromarray(img)
            if picture.size != (image_size, image_size):
                picture = picture.resize((image_size, image_size), Image.Resampling.BICUBIC)
            picture.save(p)
            paths.append(p)
    return paths


def hostile_bodies() -> list[bytes]:
    """Bad inputs a public endpoint sees: each must get a 4xx, and nothing else may suffer."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(buf, format="PNG")
    png = buf.getvalue()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40_000, 40_000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    images = [png[: len(png) // 2], b"", b"this is text, not a PNG", bomb]
    bodies = [json.dumps({"input": "data:image/png;base64," + base64.b64encode(x).decode(), "modality": "image"})
              for x in images]
    bodies.append(json.dumps({"input": "@@not base64@@", "modality": "image"}))
    bodies.append('{"input": [')
    return [b.encode() for b in bodies]


class ServerProcess:
    def __init__(self, bundle: Path, precision: str, *extra: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        ceir = Path(sys.executable).parent / "ceir"
        cmd = [str(ceir)] if ceir.exists() else [sys.executable, "-c", "from ceir_sdk.cli import main; main()"]
        cmd += ["serve", str(bundle), "--port", str(self.port), "--precision", precision, "--log-level", "warning",
                "--max-items", "64", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env={**os.environ, "CEIR_SERVE_TOKEN": ""})
        self.started_s = self._wait_ready()

    def _wait_ready(self, timeout: float = 120) -> float:
        import httpx

        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode()[-2000:] if self.proc.stderr else ""
                raise RuntimeError(f"ceir serve exited: {err}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"ceir serve not ready after {timeout} s")

    def alive(self) -> bool:
        import httpx

        try:
            return self.proc.poll() is None and httpx.get(f"{self.url}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _load(url: str, bodies: list[bytes], concurrency: int, n_requests: int,
                good: list[bool] | None = None) -> dict[str, Any]:
    """``concurrency`` clients, each sending one request at a time, ``n_requests`` in all (bounded).

    aiohttp: the lightest asyncio client at hand; the clients share the cores with the server, so
    a heavier client would lower the served figures for reasons that are not the server's."""
    import aiohttp

    latencies: list[float] = []
    statuses: list[tuple[bool, int]] = []
    next_i = 0
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=120)) as client:
        async def worker() -> None:
            nonlocal next_i
            while next_i < n_requests:
                i = next_i
                next_i += 1
                t0 = time.perf_counter()
                try:
                    async with client.post("/v1/embeddings", data=bodies[i % len(bodies)], headers=headers) as r:
                        await r.read()
                        status = r.status
                except aiohttp.ClientError:
                    status = -1
                latencies.append(time.perf_counter() - t0)
                statuses.append((True if good is None else good[i % len(bodies)], status))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    ms = np.array(latencies) * 1000
    return {"requests": n_requests, "wall_s": round(wall, 3), "per_s": n_requests / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "statuses": statuses}


def load(url: str, bodies: list[bytes], concurrency: int, n_requests: int,
         good: list[bool] | None = None) -> dict[str, Any]:
    asyncio.run(_load(url, bodies, concurrency, min(20, n_requests), good))  # warm-up: connections, caches
    return asyncio.run(_load(url, bodies, concurrency, n_requests, good))


def inprocess(bundle: Path, precision: str, paths: list[Path], rounds: int) -> dict[str, Any]:
    from ceir_onnx.runtime import Runtime

    rt = Runtime(bundle, precision=precision, batch_size=32)
    rt.embed([str(p) for p in paths[:64]])  # warm-up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        rt.embed([str(p) for p in paths])
        times.append(time.perf_counter() - t0)
    return {"images": len(paths), "per_s": len(paths) / statistics.median(times),
            "rounds_s": [round(t, 3) for t in times], "precision": rt.precision, "providers": rt.providers}


def ray_start(bundle: Path, precision: str, replicas: int) -> dict[str, Any]:
    """What `ceir serve --ray --replicas N` costs at start-up: a local Ray instance, Serve and N
    replicas each loading the bundle, until /ready answers through Ray's proxy; then one request."""
    import httpx
    import ray
    from ceir_serve.ray_backend import start_on_ray
    from ceir_serve.settings import ServeSettings
    from ray import serve

    port = _free_port()
    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    t_ray = time.perf_counter() - t0
    try:
        start_on_ray(bundle, None, ServeSettings(precision=precision), address="local", replicas=replicas,
                     host="127.0.0.1", port=port, replica_cpus=(os.cpu_count() or 1) / replicas)
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=10).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        total = time.perf_counter() - t0
        t1 = time.perf_counter()
        r = httpx.post(f"http://127.0.0.1:{port}/v1/embeddings", json={"input": "a striped cat"}, timeout=60)
        first = time.perf_counter() - t1
        return {"replicas": replicas, "ray_init_s": round(t_ray, 2), "total_to_ready_s": round(total, 2),
                "first_request_ms": round(1000 * first, 1), "first_request_status": r.status_code}
    finally:
        serve.shutdown()
        ray.shutdown()


def bar(value: float, op: str, limit: float) -> dict[str, Any]:
    met = value >= limit if op == ">=" else value <= limit
    return {"value": round(value, 3), "bar": f"{op} {limit}", "met": bool(met)}


def server_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the server process has used, all its threads together."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vit_bundle(tmp: Path) -> Path:
    """A bundle whose model costs what a real deployment's does: open_clip ViT-B-32 (random weights:
    the speed does not depend on them) with a 200-concept CEIR head, exported like any bundle."""
    from ceir_onnx.benchmarking import open_clip_parts
    from ceir_onnx.export import export_bundle

    return Path(export_bundle(open_clip_parts("ViT-B-32"), tmp / "vit-b-32-bundle", progress=False))


def measure(bundle: Path, precision: str, n_req: dict[int, int], tmp: Path, rounds: int) -> dict[str, Any]:
    """Every figure for one bundle: in-process rate, served rates batched and unbatched, latency,
    the server's own CPU per image, and the mixed good/hostile run."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    size = int(manifest["preprocess"]["image_size"])
    folder = tmp / f"png-{size}"
    folder.mkdir(exist_ok=True)
    paths = world_pngs(256, size, folder)
    bodies = [json.dumps({"input": "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode(),
                          "modality": "image"}).encode() for p in paths]
    results: dict[str, Any] = {"bundle": str(bundle), "precision": precision, "image_size": size,
                               "requests": {str(c): n for c, n in n_req.items()},
                               "images_per_s": {}, "latency_ms": {}, "server_cpu_ms_per_image": {},
                               "server_start_s": {}}
    results["images_per_s"]["inprocess"] = inprocess(bundle, precision, paths, rounds)
    configs = {"batched": ["--max-batch-size", "32", "--max-wait-ms", "5"], "unbatched": ["--max-batch-size", "1"]}
    for name, extra in configs.items():
        server = ServerProcess(bundle, precision, *extra)
        results["server_start_s"][name] = round(server.started_s, 2)
        try:
            per: dict[str, Any] = {}
            for c in CONCURRENCY:
                cpu0 = server_cpu_s(server.proc.pid)
                run = load(server.url, bodies, c, n_req[c])
                # includes the warm-up requests `load` sends first: a slight overestimate
                cpu = server_cpu_s(server.proc.pid) - cpu0
                failed = sum(1 for _, s in run.pop("statuses") if s != 200)
                per[str(c)] = {"per_s": round(run["per_s"], 1), "failed": failed}
                results["latency_ms"][f"{name}_c{c}"] = {"p50": round(run["p50_ms"], 2), "p99": round(run["p99_ms"], 2)}
                sent = n_req[c] + min(20, n_req[c])
                results["server_cpu_ms_per_image"][f"{name}_c{c}"] = round(1000 * cpu / sent, 3)
                print(f"{name} c={c}: {run['per_s']:.1f} images/s, p50 {run['p50_ms']:.1f} ms, "
                      f"p99 {run['p99_ms']:.1f} ms, failed {failed}", flush=True)
            results["images_per_s"][name] = per
            if name == "batched":
                # The same images, 16 per request: the HTTP cost per image shrinks 16-fold.
                multi = [json.dumps({"input": [json.loads(b)["input"] for b in bodies[i:i + 16]],
                                     "modality": "image"}).encode() for i in range(0, len(bodies), 16)]
                run = load(server.url, multi, 8, max(n_req[8] // 16, 8))
                failed = sum(1 for _, s in run.pop("statuses") if s != 200)
                per["8_x16_per_request"] = {"per_s": round(16 * run["per_s"], 1), "failed": failed}
                print(f"batched c=8, 16 images per request: {16 * run['per_s']:.1f} images/s", flush=True)
                hostile = hostile_bodies()
                mixed = bodies[:90] + hostile * 2  # ~12% hostile, interleaved by the modulo below
                good = [True] * 90 + [False] * (2 * len(hostile))
                order = np.random.default_rng(0).permutation(len(mixed))
                mixed = [mixed[i] for i in order]
                good = [good[i] for i in order]
                run = load(server.url, mixed, 8, 4 * len(mixed), good)
                st = run.pop("statuses")
                results["errors"] = {
                    "requests": len(st), "good": sum(g for g, _ in st), "hostile": sum(not g for g, _ in st),
                    "failed_good_requests": sum(1 for g, s in st if g and s != 200),
                    "hostile_not_4xx": sum(1 for g, s in st if not g and not 400 <= s < 500),
                    "server_up_after": server.alive()}
                print(f"mixed: {results['errors']}", flush=True)
        finally:
            server.stop()
    ip = results["images_per_s"]["inprocess"]["per_s"]
    b8 = results["images_per_s"]["batched"]["8"]["per_s"]
    u8 = results["images_per_s"]["unbatched"]["8"]["per_s"]
    lat = results["latency_ms"]["batched_c8"]
    # What the model itself costs per image in process, beside what the server spends per image:
    # the difference is HTTP, JSON, base64 and the event loop.
    results["inprocess_ms_per_image"] = round(1000 / ip, 3)
    results["served_over_inprocess_c8"] = round(b8 / ip, 3)
    results["served_over_inprocess_c8_x16_per_request"] = round(
        results["images_per_s"]["batched"]["8_x16_per_request"]["per_s"] / ip, 3)
    results["batching_gain_c8"] = round(b8 / u8, 3)
    results["bars"] = {
        "served_over_inprocess_c8": bar(b8 / ip, *BARS["served_over_inprocess_c8"]),
        "batching_gain_c8": bar(b8 / u8, *BARS["batching_gain_c8"]),
        "p99_over_p50_c8": bar(lat["p99"] / lat["p50"], *BARS["p99_over_p50_c8"]),
        "failed_good_requests": bar(results["errors"]["failed_good_requests"], *BARS["failed_good_requests"]),
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "demo-out" / "bundle")
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke test)")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--out", default=None)
    parser.add_argument("--ray-replicas", type=int, default=0,
                        help="also time `ceir serve --ray --replicas N` start-up on a local Ray instance")
    parser.add_argument("--vit", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure a ViT-B-32 bundle (random weights), a model whose cost dominates "
                             "HTTP's (default: on; off with --quick)")
    args = parser.parse_args()
    if not (args.bundle / "manifest.json").is_file():
        sys.exit(f"no bundle at {args.bundle}: run `ceir demo --out demo-out` (or --size small) first, or pass "
                 "--bundle DIR")
    from _results import result_path, write_result

    n_req = {1: 150, 8: 600, 32: 600} if not args.quick else {1: 40, 8: 160, 32: 160}
    tmp = Path(tempfile.mkdtemp(prefix="ceir-serve-bench-"))
    t_start = time.perf_counter()
    # Other work on the machine lowers every figure here; the load says how much there was.
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    results = measure(args.bundle, args.precision, n_req, tmp, 3 if args.quick else 5)
    results = {"quick": args.quick, **results, "load_average_at_start": load_at_start}
    if args.vit and not args.quick:
        # ~40x the demo model's cost per image: fewer requests keep the run to a few minutes.
        results["vit_b_32"] = measure(vit_bundle(tmp), args.precision, {1: 40, 8: 160, 32: 160}, tmp, 2)
        print(json.dumps(results["vit_b_32"]["bars"], indent=1))
    if args.ray_replicas:
        results["ray_serve_start"] = ray_start(args.bundle, args.precision, args.ray_replicas)
        print(f"ray: {results['ray_serve_start']}", flush=True)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds"] = round(time.perf_counter() - t_start, 1)
    results["command"] = "python benchmarks/serve.py " + " ".join(sys.argv[1:])
    path = result_path("serve", args.quick, args.out)
    write_result(path, results)
    print(json.dumps(results["bars"], indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
