"""The faiss side of a ConceptIndex: choosing, training, filling, searching, removing.

Index types are chosen by size in the manner of autofaiss: exact search below 10 thousand
vectors, IVF-Flat up to 10 million, IVF-PQ beyond; any faiss index-factory string
overrides the choice. Items carry explicit int64 ids: IVF indexes store them natively
(with a hash-table direct map so items can be reconstructed and removed), every other
type is wrapped in ``IndexIDMap2``.
"""

from __future__ import annotations

import logging
import math
import warnings
import weakref
from typing import Any

import numpy as np

from ceir_sdk._faiss import faiss
from ceir_sdk.errors import BadInputError

log = logging.getLogger(__name__)
# faiss's bundled type hints lag its API (search parameters, DirectMap); use it untyped there.
_fx: Any = faiss

METRICS = ("l2", "ip", "cosine")
EXACT_BELOW = 10_000
IVF_FLAT_BELOW = 10_000_000
# Below this many allowed items (or this share of the index) a filtered query is answered by
# exact search over just those items: cheaper than probing, and never returns short lists.
_EXACT_FILTER_MAX = 20_000
_EXACT_FILTER_SHARE = 0.05
# A bitmap selector (one bit per id up to the largest allowed id) answers "is this id allowed?"
# with one load; IDSelectorBatch hashes every allowed id on each construction (500k ids: tens of
# ms per query). Above this many bytes of bitmap (ids up to 2^29) the hash selector is used.
_BITMAP_MAX_BYTES = 64 << 20
_ALLOWED_CACHE_SIZE = 8
_SUBSET_CACHE_MAX_BYTES = 32 << 20  # vectors of an exact-path subset kept per filter (at most 8)


def _pow2(x: float) -> int:
    return 1 << max(0, round(math.log2(max(1.0, x))))


def choose_factory(n: int, dim: int) -> str:
    """The index-factory string autofaiss-style sizing picks for ``n`` vectors of ``dim``."""
    if n < EXACT_BELOW:
        return "Flat"
    nlist = min(65_536, max(64, _pow2(4 * math.sqrt(n))))
    if n < IVF_FLAT_BELOW:
        return f"IVF{nlist},Flat"
    # PQ with about 4 dimensions per 8-bit sub-quantiser; m must divide dim.
    m = max(d for d in range(1, min(64, dim) + 1) if dim % d == 0 and d <= max(1, dim // 4))
    return f"IVF{nlist},PQ{m}"


def train_sample_size(factory: str, n: int) -> int:
    """How many vectors training needs (faiss wants about 39 per centroid; cap the cost)."""
    ivf = [int(tok[3:]) for tok in factory.replace("_", ",").split(",") if tok.startswith("IVF") and tok[3:].isdigit()]
    if not ivf:
        return min(n, 100_000) if "PQ" in factory or "SQ" in factory else 0
    return min(n, max(40 * ivf[0], 65_536 if "PQ" in factory else 0), 2_000_000)


def _faiss_metric(metric: str) -> int:
    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


def _params(index: Any, sel: Any, nprobe: int | None, ef_search: int | None) -> Any:
    kw: dict[str, Any] = {"sel": sel} if sel is not None else {}
    base = index.index if isinstance(index, faiss.IndexIDMap2) else index
    try:
        faiss.extract_index_ivf(base)
        return _fx.SearchParametersIVF(nprobe=nprobe or 1, **kw)
    except RuntimeError:
        pass
    if isinstance(base, faiss.IndexHNSW) and ef_search:
        return _fx.SearchParametersHNSW(efSearch=ef_search, **kw)
    return faiss.SearchParameters(**kw) if kw else None


class VectorStore:
    """A faiss index with explicit int64 ids and the knobs a ConceptIndex needs."""

    def __init__(self, index: Any, metric: str, factory: str, nprobe: int | None = None,
                 ef_search: int | None = None, use_gpu: bool | None = None) -> None:
        self.index = index
        self.metric = metric
        self.factory = factory
        self.dim = int(index.d)
        self.nprobe = nprobe
        self.ef_search = ef_search
        self.use_gpu = faiss_gpu_available() if use_gpu is None else use_gpu
        self._gpu_index: Any = None
        # What filtered searches build from an allowed-id array (its selector, or its vectors for
        # the exact path), by the array's identity: MetadataStore.filter_ids hands out the same
        # read-only array for the same filter, so a repeated filter builds nothing. Cleared when
        # the stored vectors change.
        self._allowed_cache: dict[int, tuple[weakref.ref[np.ndarray], dict[str, Any]]] = {}
        try:
            self._ivf: Any = faiss.extract_index_ivf(index)
        except RuntimeError:
            self._ivf = None
        if self._ivf is not None and self.nprobe is None:
            # A starting point until tune() measures one: about 1/64 of the lists.
            self.nprobe = int(min(self._ivf.nlist, max(8, self._ivf.nlist // 64)))

    # -- construction ------------------------------------------------------------------
    @classmethod
    def create(cls, dim: int, metric: str = "l2", factory: str | None = None, expected_size: int = 0,
               use_gpu: bool | None = None) -> VectorStore:
        if metric not in METRICS:
            raise BadInputError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
        factory = factory or choose_factory(expected_size, dim)
        try:
            inner = faiss.index_factory(dim, factory, _faiss_metric(metric))
        except RuntimeError as exc:
            raise BadInputError(
                f"faiss cannot build index factory string {factory!r} for dimension {dim}: "
                f"{str(exc).splitlines()[-1]}; see the faiss wiki 'The index factory'"
            ) from exc
        try:
            ivf = faiss.extract_index_ivf(inner)
            # Hash-table direct map: reconstruct by id and remove by id both keep working.
            ivf.set_direct_map_type(_fx.DirectMap.Hashtable)
            index = inner
        except RuntimeError:
            index = inner if isinstance(inner, (faiss.IndexIDMap, faiss.IndexIDMap2)) else faiss.IndexIDMap2(inner)
        ef = 128 if "HNSW" in factory else None
        return cls(index, metric, factory, ef_search=ef, use_gpu=use_gpu)

    @property
    def is_trained(self) -> bool:
        return bool(self.index.is_trained)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def prepare(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.metric == "cosine":
            x = x.copy()
            faiss.normalize_L2(x)
        return x

    def train(self, sample: np.ndarray) -> None:
        if self.is_trained:
            return
        x = self.prepare(sample)
        if self._ivf is not None and self.use_gpu:
            # k-means on the GPU; the trained index itself stays on the CPU.
            self._ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlat(self.dim, self._ivf.metric_type))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.index.train(x)
            except RuntimeError as exc:  # faiss's C++ checks, e.g. fewer training points than lists
                lists = f"its {self._ivf.nlist} lists" if self._ivf is not None else "its clusters"
                raise BadInputError(
                    f"cannot train the {self.factory} index on {len(x)} vectors: faiss needs at least one "
                    f"training vector per list ({lists}) and 256 per PQ codebook. Train it on more vectors, "
                    "or use factory 'Flat' (exact search; the right choice below about 10,000 vectors)"
                ) from exc

    # -- mutation ----------------------------------------------------------------------
    def add(self, ids: np.ndarray, x: np.ndarray) -> None:
        if not self.is_trained:
            raise BadInputError(f"the {self.factory} index must be trained before adding; call train() first")
        self.index.add_with_ids(self.prepare(x), np.ascontiguousarray(ids, dtype=np.int64))
        self._gpu_index = None
        self._allowed_cache.clear()

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        try:
            # An explicit array selector: the only kind the hash-table direct map accepts.
            removed = int(self.index.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids))))
        except RuntimeError as exc:
            if "not implemented" not in str(exc):
                raise
            removed = self._rebuild_without(ids)
        self._gpu_index = None
        self._allowed_cache.clear()
        return removed

    def _rebuild_without(self, ids: np.ndarray) -> int:
        # Graph indexes (HNSW) cannot delete: rebuild from the kept vectors, same settings.
        keep = np.setdiff1d(self.ids(), ids)
        vectors = self.reconstruct(keep) if len(keep) else np.zeros((0, self.dim), np.float32)
        fresh = VectorStore.create(self.dim, "l2" if self.metric == "l2" else "ip", self.factory, use_gpu=False)
        if len(keep):
            fresh.train(vectors)
            fresh.add(keep, vectors)
        removed = self.ntotal - fresh.ntotal
        self.index = fresh.index
        return removed

    # -- reads -------------------------------------------------------------------------
    def ids(self) -> np.ndarray:
        """All stored ids, sorted."""
        if isinstance(self.index, (faiss.IndexIDMap, faiss.IndexIDMap2)):
            return np.sort(faiss.vector_to_array(self.index.id_map).astype(np.int64))
        invlists = self._ivf.invlists
        parts = []
        for lst in range(invlists.nlist):
            size = invlists.list_size(lst)
            if size:
                parts.append(faiss.rev_swig_ptr(invlists.get_ids(lst), size).copy())
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """Stored vectors for ``ids`` (approximate for compressed indexes such as PQ)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(ids), 65_536):
            chunk = ids[start : start + 65_536]
            out[start : start + len(chunk)] = self.index.reconstruct_batch(chunk)
        return out

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores (higher is better: similarity, or minus squared L2) and ids; -1 pads."""
        q = self.prepare(queries)
        nprobe = nprobe or self.nprobe
        if allowed is not None:
            return self._search_allowed(q, k, np.ascontiguousarray(allowed, dtype=np.int64), nprobe)
        index = self._searchable()
        params = _params(self.index, None, nprobe, self.ef_search)
        dist, ids = index.search(q, k, params=params) if params is not None else index.search(q, k)
        return self._scores(dist, ids), ids

    def _search_allowed(
        self, q: np.ndarray, k: int, allowed: np.ndarray, nprobe: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        n_allowed = len(allowed)
        want = min(k, n_allowed)
        if n_allowed <= max(_EXACT_FILTER_MAX, _EXACT_FILTER_SHARE * self.ntotal) or n_allowed < 4 * k:
            return self._exact_subset(q, k, allowed)
        dist, ids = self.index.search(q, k, params=_params(self.index, self._selector(allowed), nprobe,
                                                             self.ef_search))
        scores = self._scores(dist, ids)
        short = np.flatnonzero((ids >= 0).sum(axis=1) < want)
        if len(short):  # probes held too few allowed items for these rows: answer exactly
            s2, i2 = self._exact_subset(q[short], k, allowed)
            scores[short], ids[short] = s2, i2
        return scores, ids

    def _cached(self, allowed: np.ndarray) -> dict[str, Any]:
        """The per-array cache entry of ``allowed`` (created empty)."""
        key = id(allowed)
        entry = self._allowed_cache.get(key)
        if entry is not None and entry[0]() is allowed:  # not a new array at a reused address
            return entry[1]
        if len(self._allowed_cache) >= _ALLOWED_CACHE_SIZE:
            self._allowed_cache.pop(next(iter(self._allowed_cache)))
        built: dict[str, Any] = {}
        self._allowed_cache[key] = (weakref.ref(allowed), built)
        return built

    def _selector(self, allowed: np.ndarray) -> Any:
        built = self._cached(allowed)
        if "selector" not in built:
            top = int(allowed.max()) if len(allowed) else 0
            if top // 8 + 1 <= _BITMAP_MAX_BYTES:
                mask = np.zeros(top + 1, dtype=bool)
                mask[allowed] = True
                bitmap = np.packbits(mask, bitorder="little")  # faiss reads bit (id & 7) of byte id >> 3
                built["keep"] = bitmap  # the selector holds a raw pointer into it
                built["selector"] = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
            else:
                built["keep"] = allowed
                built["selector"] = faiss.IDSelectorBatch(len(allowed), faiss.swig_ptr(allowed))
        return built["selector"]

    def _exact_subset(self, q: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        ids = np.full((len(q), k), -1, dtype=np.int64)
        if len(allowed) == 0:
            return scores, ids
        built = self._cached(allowed)
        base = built.get("vectors")
        if base is None:
            base = self.reconstruct(allowed)
            if base.nbytes <= _SUBSET_CACHE_MAX_BYTES:
                built["vectors"] = base
        kk = min(k, len(allowed))
        dist, pos = faiss.knn(q, base, kk, metric=_faiss_metric(self.metric))
        ids[:, :kk] = np.where(pos >= 0, allowed[np.clip(pos, 0, None)], -1)
        scores[:, :kk] = self._scores(dist, ids[:, :kk])
        return scores, ids

    def _scores(self, dist: np.ndarray, ids: np.ndarray) -> np.ndarray:
        s = -dist if self.metric == "l2" else dist.copy()
        s = s.astype(np.float32)
        s[ids < 0] = -np.inf
        return s

    def _searchable(self) -> Any:
        if not self.use_gpu:
            return self.index
        if self._gpu_index is None:
            try:
                self._gpu_index = faiss.index_cpu_to_all_gpus(self.index)
            except (RuntimeError, AttributeError) as exc:
                log.warning("faiss GPU search unavailable for %s (%s); searching on the CPU", self.factory, exc)
                self.use_gpu = False
                return self.index
        return self._gpu_index

    # -- tuning ------------------------------------------------------------------------
    def tune(self, sample_ids: np.ndarray, k: int = 10, target_recall: float = 0.97) -> dict[str, Any]:
        """Pick the smallest nprobe whose recall@k against an exhaustive probe reaches the target.

        The queries are the stored vectors of ``sample_ids``; each query's own id is left
        out of both result lists so the trivial self-match does not inflate recall.
        """
        if self._ivf is None or self.ntotal <= k + 1 or len(sample_ids) == 0:
            return {"tuned": False}
        nlist = int(self._ivf.nlist)
        sample_ids = np.asarray(sample_ids, dtype=np.int64)
        q = self.reconstruct(sample_ids)
        _, truth = self.search(q, k + 1, nprobe=nlist)
        chosen, recall = nlist, 1.0
        nprobe = 1
        while nprobe < nlist:
            _, got = self.search(q, k + 1, nprobe=nprobe)
            r = _recall_excluding_self(sample_ids, truth, got, k)
            if r >= target_recall:
                chosen, recall = nprobe, r
                break
            nprobe *= 2
        self.nprobe = chosen
        return {"tuned": True, "nprobe": chosen, "recall_vs_exhaustive": round(recall, 4), "nlist": nlist}


def _recall_excluding_self(self_ids: np.ndarray, truth: np.ndarray, got: np.ndarray, k: int) -> float:
    hits = total = 0
    for me, t, g in zip(self_ids.tolist(), truth, got):
        t_list = [x for x in t.tolist() if x >= 0 and x != me][:k]
        g_set = {x for x in g.tolist() if x >= 0 and x != me}
        g_set = set(list(g_set)[:k]) if len(g_set) > k else g_set
        hits += sum(1 for x in t_list if x in g_set)
        total += len(t_list)
    return hits / max(total, 1)


def faiss_gpu_available() -> bool:
    """True when a GPU build of faiss is installed and sees at least one device."""
    try:
        return int(faiss.get_num_gpus()) > 0
    except AttributeError:
        return False
