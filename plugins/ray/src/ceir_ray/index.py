"""Build a faiss index from embedding shards without holding all vectors in memory.

Train on a uniform random sample of rows (one pass, one shard in memory at a time), then add
shard by shard. Index type by size: exact below 10 thousand vectors, IVF-Flat below one
million, IVF-PQ (with an HNSW coarse quantiser, so assigning millions of vectors stays cheap)
from there on; any faiss index-factory string overrides. faiss ids are the shards' row
numbers, which :meth:`ceir_ray.shards.ShardSet.ids_for` maps back to ids.

    out/  index.json (settings, shard fingerprint, which .faiss file is current)
          index-<hash>.faiss
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ceir_ray.atomic import remove_stale_temps, write_json, write_with
from ceir_ray.shards import ShardSet, column_matrix
from ceir_sdk.atomic import check_format, sha256_file
from ceir_sdk.errors import BadInputError, IncompatibleFileError

FORMAT = "ceir-shard-index"
FORMAT_VERSION = 1
SPACES = ("latent", "concepts")
METRICS = ("l2", "ip", "cosine")


@dataclass
class IndexReport:
    out_dir: str
    factory: str
    metric: str
    space: str
    n_vectors: int
    skipped_rows: int  # rows whose image could not be read
    train_size: int
    nprobe: int | None
    seconds_train: float
    seconds_add: float


def _pow2(x: float) -> int:
    return 1 << max(0, round(math.log2(max(1.0, x))))


def choose_factory(n: int, dim: int) -> str:
    if n < 10_000:
        return "Flat"
    nlist = min(65_536, max(64, _pow2(math.sqrt(n))))
    if n < 1_000_000:
        return f"IVF{nlist},Flat"
    # about 4 dimensions per 8-bit sub-quantiser: dim/4 bytes per vector
    m = max(d for d in range(1, min(64, dim) + 1) if dim % d == 0 and d <= max(1, dim // 4))
    return f"IVF{nlist}_HNSW32,PQ{m}"


def _nlist(factory: str) -> int:
    head = factory.split(",")[0]
    digits = head[3:].split("_")[0] if head.startswith("IVF") else ""
    return int(digits) if digits.isdigit() else 0


def train_size_for(factory: str, n: int) -> int:
    nlist = _nlist(factory)
    if nlist:  # faiss samples at most 256 points per centroid; 64 is plenty
        return min(n, max(64 * nlist, 20_000 if "PQ" in factory else 0))
    return min(n, 50_000) if ("PQ" in factory or "SQ" in factory) else 0


def _sample(shards: ShardSet, space: str, rows: np.ndarray) -> np.ndarray:
    """The vectors of ``rows`` (sorted global row numbers), reading one shard at a time."""
    import pyarrow.parquet as pq

    parts = []
    for shard in np.unique(rows // shards.shard_size):
        table = pq.read_table(shards.root / shards.manifest["shards"][str(int(shard))]["file"], columns=[space])
        local = rows[rows // shards.shard_size == shard] - int(shard) * shards.shard_size
        parts.append(column_matrix(table.take(local), space))
    return np.concatenate(parts)


def build_index(
    shards_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    space: str = "latent",
    metric: str = "l2",
    factory: str | None = None,
    train_size: int | None = None,
    nprobe: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> IndexReport:
    """Index the ``space`` vectors ("latent" or "concepts") of a finished shard folder."""
    from tqdm.auto import tqdm

    from ceir_sdk._faiss import faiss

    if space not in SPACES or metric not in METRICS:
        raise BadInputError(f"space must be one of {SPACES} and metric one of {METRICS}; got {space!r}, {metric!r}")
    shards = ShardSet.open(shards_dir)
    files = shards.files()  # refuses an unfinished shard folder
    errors = sum(int(s.get("errors", 0)) for s in shards.manifest["shards"].values())
    n = shards.n_rows - errors
    if n <= 0:
        raise BadInputError(f"{shards_dir} holds no embedded rows to index")
    import pyarrow.parquet as pq

    dim = pq.read_schema(files[0]).field(space).type.list_size
    factory = factory or choose_factory(n, dim)
    fmetric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    try:
        index = faiss.index_factory(dim, factory, fmetric)
    except RuntimeError as exc:
        raise BadInputError(f"faiss cannot build {factory!r} for dimension {dim}: {str(exc).splitlines()[-1]}") from exc
    if not isinstance(index, faiss.IndexIVF) and not factory.startswith("IDMap"):
        index = faiss.IndexIDMap2(index)

    def prepare(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if metric == "cosine":
            faiss.normalize_L2(x)
        return x

    t0 = time.perf_counter()
    n_train = 0
    if not index.is_trained:
        n_train = train_size or train_size_for(factory, n)
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(shards.n_rows, size=min(n_train, shards.n_rows), replace=False))
        sample = _sample(shards, space, rows)
        sample = prepare(sample[np.isfinite(sample).all(1)])
        _fast_pq_training(index)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            index.train(sample)
        del sample
    t1 = time.perf_counter()
    added = 0
    with tqdm(total=shards.n_rows, desc="index", unit="vec", disable=not progress) as bar:
        for f in files:
            table = pq.read_table(f, columns=["row", space])
            x = column_matrix(table, space)
            ok = np.isfinite(x).all(1)
            index.add_with_ids(prepare(x[ok]), np.ascontiguousarray(table.column("row").to_numpy()[ok]))
            added += int(ok.sum())
            bar.update(table.num_rows)
            del table, x
    t2 = time.perf_counter()
    ivf = _ivf(index)
    if ivf is not None:
        nprobe = nprobe or int(min(ivf.nlist, max(8, ivf.nlist // 64)))
        ivf.nprobe = nprobe
    _save(Path(out_dir), index, {
        "format": FORMAT, "format_version": FORMAT_VERSION, "factory": factory, "metric": metric, "space": space,
        "dim": dim, "ntotal": int(index.ntotal), "nprobe": nprobe, "shards": str(Path(shards_dir).resolve()),
        "shards_fingerprint": shards.manifest["input_fingerprint"], "train_size": n_train,
    })
    return IndexReport(str(out_dir), factory, metric, space, added, shards.n_rows - added, n_train, nprobe,
                       round(t1 - t0, 3), round(t2 - t1, 3))


def _fast_pq_training(index: Any) -> None:
    """PQ codebooks: 10 k-means iterations on at most 64 points per centroid (faiss: 25 and 256),
    and no polysemous code reordering (only used by Hamming-filtered search, which we never do).

    On a small CPU the defaults spend minutes for a barely better codebook: each of the m
    sub-quantisers runs its own k-means with 256 centroids.
    """
    from ceir_sdk._faiss import faiss

    ivf = _ivf(index)
    target = faiss.downcast_index(ivf) if ivf is not None else index
    if hasattr(target, "do_polysemous_training"):
        target.do_polysemous_training = False  # simulated annealing: by far the slowest step
    pq = getattr(target, "pq", None)
    if pq is not None:
        pq.cp.niter = 10
        pq.cp.max_points_per_centroid = 64


def _ivf(index: Any) -> Any:
    from ceir_sdk._faiss import faiss

    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def _save(out: Path, index: Any, info: dict[str, Any]) -> None:
    """New .faiss file under a content name, then the JSON pointer swapped atomically."""
    from ceir_sdk._faiss import faiss

    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    # A fresh name per save: the old file stays loadable until index.json points elsewhere.
    name = f"index-{uuid.uuid4().hex[:16]}.faiss"
    write_with(out / name, lambda tmp: faiss.write_index(index, str(tmp)))
    info["sha256"] = sha256_file(out / name)
    info["file"] = name
    write_json(out / "index.json", info)
    for old in out.glob("index-*.faiss"):
        if old.name != name:
            old.unlink()


def load_index(index_dir: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """(faiss index, its settings) from a folder written by :func:`build_index`."""
    from ceir_sdk._faiss import faiss

    path = Path(index_dir) / "index.json"
    if not path.exists():
        raise BadInputError(f"{index_dir} is not a shard index (no index.json); run `ceir scale index` first")
    info = check_format(json.loads(path.read_text("utf-8")), FORMAT, FORMAT_VERSION, str(path),
                        upgrade="upgrade ceir-ray, or rebuild with `ceir scale index`")
    file = Path(index_dir) / info["file"]
    if not file.exists():
        raise IncompatibleFileError(f"{file} is missing; rebuild with `ceir scale index`")
    index = faiss.read_index(str(file))
    ivf = _ivf(index)
    if ivf is not None and info.get("nprobe"):
        ivf.nprobe = int(info["nprobe"])
    return index, info


def report_dict(report: IndexReport) -> dict[str, Any]:
    return asdict(report)
