"""ConceptIndex: latents for similarity, concept activations for explanation, metadata in SQLite.

Vectors (faiss), activations (numpy) and metadata (SQLite) change together: every add or
remove validates first, writes SQLite inside a transaction together with a generation
counter, changes faiss, and commits only when both succeeded. Saved versions record the
generation and counts of all three, and loading refuses a version where they disagree.

The class holds the three stores and the one lock over them; the work lives beside it:
saving and loading in :mod:`~ceir_sdk.index.persist`, concept-expression scoring and edits in
:mod:`~ceir_sdk.index.concept_query`, shard-by-shard building in :mod:`~ceir_sdk.index.build`,
the recorded model in :mod:`~ceir_sdk.index.encoder_ref`, results in :mod:`~ceir_sdk.index.results`.
It still runs past 500 lines because add/remove (one transaction over three stores), lookups
and the search entry points must hold that lock and its private state; split further, each
piece would reach into the others' internals.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ceir_sdk._faiss import faiss  # one loader: a clear error without faiss, a warning with two builds
from ceir_sdk.arrays import float32_matrix
from ceir_sdk.errors import BadInputError, IncompatibleFileError
from ceir_sdk.index import persist
from ceir_sdk.index.build import fill_from_shards
from ceir_sdk.index.calibration import MIN_ITEMS, N_COMPONENTS, PRESENT_PROBABILITY, PresenceCalibration
from ceir_sdk.index.concept_query import (
    RANKINGS,
    check_rule,
    concept_levels,
    edit_activations,
    score_concepts,
    term_report,
    top_rows,
)
from ceir_sdk.index.encoder import Encoder, as_encoder, load_encoder
from ceir_sdk.index.encoder_ref import EncoderRef, plan_add
from ceir_sdk.index.explain import name_clusters, shared_concepts, top_concepts
from ceir_sdk.index.expression import ConceptQuery, UnknownConceptError, parse_expression
from ceir_sdk.index.metadata import MetadataStore
from ceir_sdk.index.results import Hit, IndexClusters, Shard
from ceir_sdk.index.vectors import VectorStore, choose_factory, train_sample_size

Where = Mapping[str, Any] | None
log = logging.getLogger(__name__)


def _as_matrix(x: Any, dim: int | None, what: str) -> np.ndarray:
    return float32_matrix(x, what, dim=dim, allow_row=True,
                          mismatch="the index holds {want}-d vectors; encode items and queries with the model "
                                   "that built the index")


def _finite_threshold(value: Any) -> float:
    """A z threshold must be a finite number: NaN compares false with everything and +-inf
    makes every + (or - ) term unmeetable, so either silently matched nothing."""
    try:
        thr = float(value)
    except (TypeError, ValueError):
        raise BadInputError(f"the presence threshold must be a number (a z-score such as 0 or 0.5), "
                            f"got {value!r}") from None
    if not np.isfinite(thr):
        raise BadInputError(f"the presence threshold must be a finite z-score such as 0 or 0.5, got {thr}")
    return thr


class ConceptIndex:
    """A searchable, explainable, persistent collection of CEIR embeddings.

    ``dim`` is the latent size; ``concepts`` names the columns of the activations.
    ``metric`` is "l2" (score = minus squared distance), "ip" or "cosine". ``factory`` is a
    faiss index-factory string; by default the type is chosen by size when data first
    arrives (see :func:`ceir_sdk.index.vectors.choose_factory`).

    ``presence_rule`` decides when a concept counts as present in an item, for what a concept
    expression matches: "calibrated" (default), P(present) >= 0.5 under the presence
    calibration, falling back to ``z > presence_threshold`` while there is no calibration
    (fewer than 50 items); "threshold", always ``z > presence_threshold`` (the rule before
    calibration). Saved with the index; a query can override it.
    """

    def __init__(self, dim: int, concepts: Sequence[str] = (), *, metric: str = "l2", factory: str | None = None,
                 encoder: Any = None, use_gpu: bool | None = None, presence_threshold: float = 0.0,
                 presence_rule: str = "calibrated") -> None:
        if int(dim) <= 0:
            raise BadInputError(f"dim must be positive, got {dim}")
        concepts = [str(c) for c in concepts]
        if len(set(concepts)) != len(concepts):
            raise BadInputError("concept names must be unique")
        self.dim = int(dim)
        self.concepts = concepts
        self.metric = metric
        self.factory = factory
        self.presence_threshold = _finite_threshold(presence_threshold)
        self._presence_rule = check_rule(presence_rule)
        self._encoder_ref: EncoderRef | None = None
        self._encoder: Encoder | None = as_encoder(encoder) if encoder is not None else None
        self._use_gpu = use_gpu
        self._store: VectorStore | None = None
        self._meta = MetadataStore()
        self._ids = np.zeros(0, np.int64)
        self._acts = np.zeros((0, len(concepts)), np.float32)
        self._sorter: np.ndarray | None = None
        self._sorted_ids = np.zeros(0, np.int64)  # self._ids[self._sorter], kept with it
        self._quantiles: tuple[np.ndarray, np.ndarray] | None = None
        self.generation = 0
        self._root: Path | None = None  # the directory last loaded from or saved to
        # The version of _root this copy holds (None: new, or an explicit older version): a save
        # back to _root must find it still current, or another writer's version would be lost.
        self._read_version: str | None = None
        self.tuning: dict[str, Any] = {}
        self.calibration: PresenceCalibration | None = None
        self.calibration_note: str | None = None
        self._lock = threading.RLock()
        if metric not in ("l2", "ip", "cosine"):
            raise BadInputError(f"metric {metric!r} is not one of l2, ip, cosine")

    # -- construction ------------------------------------------------------------------
    @classmethod
    def build(cls, latents: np.ndarray, activations: np.ndarray | None = None, concepts: Sequence[str] = (), *,
              ids: Any = None, metadata: Sequence[Mapping[str, Any]] | None = None, metric: str = "l2",
              factory: str | None = None, shard_size: int = 100_000, tune: bool = True,
              target_recall: float = 0.97, encoder: Any = None, use_gpu: bool | None = None, seed: int = 0,
              progress: bool = True, presence_rule: str = "calibrated") -> ConceptIndex:
        """Choose the index type by size, train on a sample, add in shards, tune nprobe."""
        x = _as_matrix(latents, None, "latents")
        index = cls(x.shape[1], concepts, metric=metric, factory=factory, encoder=encoder, use_gpu=use_gpu,
                    presence_rule=presence_rule)
        index.train(x, seed=seed, expected_size=len(x))
        ids_arr = index._new_ids(len(x), ids)
        shards = (Shard(x[start:start + shard_size],
                        None if activations is None else np.asarray(activations)[start:start + shard_size],
                        ids=ids_arr[start:start + shard_size],
                        metadata=None if metadata is None else metadata[start:start + shard_size])
                  for start in range(0, len(x), shard_size))
        return fill_from_shards(index, shards, len(x), tune=tune, target_recall=target_recall, seed=seed,
                                progress=progress)

    @classmethod
    def from_shards(cls, shards: Iterable[Shard | Mapping[str, Any]], dim: int, concepts: Sequence[str] = (), *,
                    expected_size: int, metric: str = "l2", factory: str | None = None, tune: bool = True,
                    target_recall: float = 0.97, seed: int = 0, progress: bool = True,
                    presence_rule: str = "calibrated") -> ConceptIndex:
        """Build from an iterable of shards: buffer shards until the training sample is full,
        train, then add shard by shard (memory stays near one sample plus one shard)."""
        index = cls(dim, concepts, metric=metric, factory=factory, presence_rule=presence_rule)
        index.factory = factory or choose_factory(expected_size, dim)
        return fill_from_shards(index, shards, expected_size, tune=tune, target_recall=target_recall, seed=seed,
                                progress=progress)

    @property
    def is_trained(self) -> bool:
        """Whether the vector store exists and is trained (an empty new index is not)."""
        return self._store is not None and self._store.is_trained

    def train(self, sample: np.ndarray, *, seed: int = 0, expected_size: int | None = None) -> None:
        """Create the faiss index (type by ``expected_size``) and train it on a sample."""
        x = _as_matrix(sample, self.dim, "training vectors")
        with self._lock:
            if self._store is None:
                self.factory = self.factory or choose_factory(expected_size or len(x), self.dim)
                self._store = VectorStore.create(self.dim, self.metric, self.factory, use_gpu=self._use_gpu)
            if self._store.is_trained:
                return
            need = train_sample_size(self.factory or "", expected_size or len(x))
            if need and len(x) > need:
                x = x[np.random.default_rng(seed).choice(len(x), need, replace=False)]
            self._store.train(x)

    def tune(self, *, target_recall: float = 0.97, n_queries: int = 256, k: int = 10, seed: int = 0) -> dict[str, Any]:
        """Pick the search breadth (nprobe) that reaches ``target_recall`` on stored items."""
        if self._store is None or len(self) == 0:
            return {"tuned": False}
        rng = np.random.default_rng(seed)
        sample = self._ids[rng.choice(len(self), min(n_queries, len(self)), replace=False)]
        self.tuning = self._store.tune(sample, k=k, target_recall=target_recall)
        return self.tuning

    # -- mutation ----------------------------------------------------------------------
    def _new_ids(self, n: int, ids: Any) -> np.ndarray:
        if ids is None:
            start = int(self._ids.max()) + 1 if len(self._ids) else 0
            return np.arange(start, start + n, dtype=np.int64)
        arr = np.asarray(ids)
        if arr.shape != (n,) or arr.dtype.kind not in "iu":
            raise BadInputError(f"ids must be {n} integers (one per vector); got shape {arr.shape}, dtype {arr.dtype}")
        if len(arr) and (arr.min() < 0 or arr.max() > np.iinfo(np.int64).max):
            raise BadInputError("ids must be non-negative int64 values")
        return arr.astype(np.int64)

    def add(self, latents: Any, activations: Any = None, *, ids: Any = None,
            metadata: Sequence[Mapping[str, Any]] | None = None) -> np.ndarray:
        """Add items; returns their ids. All three stores change, or none does."""
        x = _as_matrix(latents, self.dim, "latents")
        n = len(x)
        if self.concepts:
            if activations is None:
                raise BadInputError(f"this index explains by {len(self.concepts)} concepts; give activations (N, C)")
            acts = _as_matrix(activations, len(self.concepts), "concept activations")
            if len(acts) != n:
                raise BadInputError(f"{n} latents but {len(acts)} rows of concept activations")
        else:
            acts = np.zeros((n, 0), np.float32)
        records: list[Mapping[str, Any]] = list(metadata) if metadata is not None else [{}] * n
        if len(records) != n:
            raise BadInputError(f"{n} latents but {len(records)} metadata records")
        with self._lock:
            new_ids = self._new_ids(n, ids)
            if len(np.unique(new_ids)) != n:
                raise BadInputError("ids repeat within this batch; every item needs its own id")
            clash = np.intersect1d(new_ids, self._ids)
            if len(clash):
                raise BadInputError(f"ids already in the index: {clash[:5].tolist()}; remove them first or use new ids")
            if self._store is None or not self._store.is_trained:
                self.train(x, expected_size=n)
            assert self._store is not None
            all_ids = np.concatenate([self._ids, new_ids])
            all_acts = np.concatenate([self._acts, acts])
            conn = self._meta.conn
            conn.execute("BEGIN")
            try:
                self._meta.insert(new_ids, records)
                self._meta.set_meta("generation", self.generation + 1)
                self._store.add(new_ids, x)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._ids, self._acts = all_ids, all_acts
            self._changed(n)
            return new_ids

    def remove(self, ids: Any) -> int:
        """Remove items by id; unknown ids are an error (nothing is removed then)."""
        raw = np.asarray(ids).reshape(-1)
        if raw.dtype.kind not in "iu" and not (raw.dtype.kind == "f" and np.all(np.mod(raw, 1) == 0)) and raw.size:
            raise BadInputError(f"ids must be integers; got {raw[:5].tolist()} ({raw.dtype}); nothing was removed")
        arr = np.unique(raw.astype(np.int64))
        with self._lock:
            missing = np.setdiff1d(arr, self._ids)
            if len(missing):
                raise BadInputError(f"ids not in the index: {missing[:5].tolist()}; nothing was removed")
            if not len(arr):
                return 0
            keep = ~np.isin(self._ids, arr)
            new_ids, new_acts = self._ids[keep], self._acts[keep]
            assert self._store is not None
            conn = self._meta.conn
            conn.execute("BEGIN")
            try:
                self._meta.delete(arr)
                self._meta.set_meta("generation", self.generation + 1)
                removed = self._store.remove(arr)
                if removed != len(arr):
                    raise IncompatibleFileError(f"faiss removed {removed} of {len(arr)} vectors; the index is damaged")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._ids, self._acts = new_ids, new_acts
            self._changed(len(arr))
            return len(arr)

    def _changed(self, n_items: int) -> None:
        self.generation += 1
        self._sorter = None
        self._quantiles = None
        if self.calibration is not None:
            self.calibration.changed_since_fit += int(n_items)

    # -- presence calibration ----------------------------------------------------------
    @property
    def presence_rule(self) -> str:
        """What "present" means for matching: "calibrated" or "threshold" (see the class doc)."""
        return self._presence_rule

    @presence_rule.setter
    def presence_rule(self, rule: str) -> None:
        self._presence_rule = check_rule(rule)

    def calibrate(self, activations: Any = None, *, n_components: int = N_COMPONENTS, seed: int = 0
                  ) -> PresenceCalibration:
        """Fit the label-free presence calibration (see :mod:`ceir_sdk.index.calibration`).

        With no ``activations``, on the index's own items (after bulk changes the fit is marked
        stale, ``calibration.stale()``, and kept until this is called again); otherwise on the
        given (N, C) activations, e.g. a training split's, kept until the next call. Saved with
        the index.
        """
        if not self.concepts:
            raise BadInputError("this index holds no concept activations, so there is nothing to calibrate")
        with self._lock:
            if activations is None:
                acts, source = self._acts, "index"
            else:
                acts, source = _as_matrix(activations, len(self.concepts), "calibration activations"), "external"
            if len(acts) < MIN_ITEMS:
                raise BadInputError(f"{len(acts)} items are too few to calibrate concept presence; "
                                    f"need at least {MIN_ITEMS}")
            self.calibration = PresenceCalibration.fit(acts, self.concepts, n_components=n_components,
                                                       source=source, seed=seed)
            self.calibration_note = None
            return self.calibration

    def _calibrate_if_possible(self) -> PresenceCalibration | None:
        """The current calibration; a first one is fitted when there is none and the index can
        have one. A stale one is kept, never refitted here: adds, saves and queries do not pay
        for a refit by surprise (``calibrate()`` / ``ceir index calibrate`` does it; ``info()``
        says ``stale``). A first fit costs about a second at any size (bounded sample, binned EM)."""
        cal = self.calibration
        if not self.concepts or len(self) < MIN_ITEMS:
            return cal
        if cal is None:
            cal = self.calibrate()
        return cal

    def presence_of(self, ids: Any) -> np.ndarray:
        """Calibrated P(present) (N, C) of items; needs a calibration (at least 50 items)."""
        acts = self.activations_of(ids)
        with self._lock:
            cal = self._calibrate_if_possible()
        if cal is None:
            raise BadInputError(f"no presence calibration: the index holds {len(self)} items, fewer than {MIN_ITEMS}")
        return cal.presence(acts)

    # -- lookups -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> np.ndarray:
        return self._ids.copy()

    @property
    def encoder_ref(self) -> EncoderRef | None:
        """The model (and ONNX graph) that embedded the items; queries without an encoder use it."""
        return self._encoder_ref

    @encoder_ref.setter
    def encoder_ref(self, value: EncoderRef | dict[str, Any] | None) -> None:
        self._encoder_ref = EncoderRef.from_json(value)

    @property
    def encoder(self) -> Encoder | None:
        """The encoder for queries: the one given, else the recorded model with its recorded precision."""
        if self._encoder is None and self._encoder_ref is not None:
            self._encoder = self._encoder_ref.load(self._root)
        return self._encoder

    @encoder.setter
    def encoder(self, value: Any) -> None:
        self._encoder = None if value is None else as_encoder(value)

    def encoder_path(self) -> Path:
        """Where the recorded model is: its saved path, or the same place relative to the index
        when the two were moved together. A clear error when neither exists."""
        if self._encoder_ref is None:
            raise BadInputError("this index records no model; pass one (--model PATH, or index.encoder = ...)")
        return self._encoder_ref.locate(self._root)

    def recorded_encoder(self, **overrides: Any) -> Encoder:
        """The recorded model loaded with its recorded precision, ``overrides`` (providers, threads,
        precision, ...) replacing what they name; a clear error when the index records none."""
        if self._encoder_ref is None:
            raise BadInputError("this index records no model; pass one (--model PATH, or index.encoder = ...)")
        return self._encoder_ref.load(self._root, **overrides)

    def plan_add(self, model: str | Path | None = None, *, precision: str | None = None,
                 providers: str | list[str] | None = None, other_model: bool = False) -> tuple[Path, dict[str, Any]]:
        """(model path, runtime options) for new items: the index's own model and precision unless
        told otherwise; another model is refused unless ``other_model`` (see :func:`encoder_ref.plan_add`)."""
        return plan_add(self._encoder_ref, self._root, model, precision=precision, providers=providers,
                        other_model=other_model)

    def encoder_for_add(self, model: str | Path | None = None, *, precision: str | None = None,
                        providers: str | list[str] | None = None, other_model: bool = False) -> Encoder:
        """The encoder for new items, as :meth:`plan_add` chooses it."""
        where, options = self.plan_add(model, precision=precision, providers=providers, other_model=other_model)
        return load_encoder(where, **options)

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        if self._sorter is None:
            self._sorter = np.argsort(self._ids, kind="stable")
            # kept, not re-gathered per call: at 1M items that gather cost each query ~1-3 ms
            self._sorted_ids = self._ids[self._sorter]
        sorted_ids = self._sorted_ids
        pos = np.clip(np.searchsorted(sorted_ids, ids), 0, max(len(sorted_ids) - 1, 0))
        if len(sorted_ids) == 0 or not np.array_equal(sorted_ids[pos], ids):
            bad = [int(i) for i in ids if i not in set(sorted_ids[pos].tolist())] if len(sorted_ids) else ids.tolist()
            raise BadInputError(f"ids not in the index: {bad[:5]}")
        return self._sorter[pos]

    def activations_of(self, ids: Any) -> np.ndarray:
        """Stored z-scored concept activations (N, C) of items."""
        return self._acts[self._rows(np.asarray(ids, dtype=np.int64).reshape(-1))]

    def vectors_of(self, ids: Any) -> np.ndarray:
        """Stored latents (N, L) (approximate for PQ indexes; normalised for cosine)."""
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        self._rows(arr)
        assert self._store is not None
        return self._store.reconstruct(arr)

    def get(self, ids: Any) -> list[dict[str, Any]]:
        """Metadata records of items, in the order asked."""
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        self._rows(arr)
        recs = self._meta.records(arr.tolist())
        return [{"id": int(i), **recs[int(i)]} for i in arr]

    def keys_present(self, keys: Sequence[str]) -> set[str]:
        """Which of these keys the index holds (adding only new items, e.g. files not yet indexed)."""
        return set(self._meta.ids_for_keys(list(keys)))

    def ids_for_keys(self, keys: Sequence[str]) -> np.ndarray:
        found = self._meta.ids_for_keys(list(keys))
        missing = [k for k in keys if k not in found]
        if missing:
            raise BadInputError(f"keys not in the index: {missing[:5]}")
        return np.array([found[k] for k in keys], dtype=np.int64)

    # -- queries -----------------------------------------------------------------------
    def _check_k(self, k: int) -> None:
        if len(self) == 0:
            raise BadInputError("the index is empty; add items before searching")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise BadInputError(f"k must be a positive integer, got {k!r}")
        if k > len(self):
            raise BadInputError(f"k={k} but the index holds only {len(self)} items; ask for k <= {len(self)}")

    def _allowed(self, where: Where, exclude: np.ndarray | None = None) -> np.ndarray | None:
        allowed = self._meta.filter_ids(where) if where else None
        if exclude is not None and len(exclude):
            allowed = np.setdiff1d(self._ids if allowed is None else allowed, exclude)
        return allowed

    def _hits(self, ids: np.ndarray, scores: np.ndarray, query_acts: np.ndarray | None, top: int) -> list[Hit]:
        valid = ids >= 0
        ids, scores = ids[valid], scores[valid]
        if not len(ids):
            return []
        recs = self._meta.records(ids.tolist())
        acts = self._acts[self._rows(ids)] if self.concepts else None
        hits = []
        for j, (i, s) in enumerate(zip(ids.tolist(), scores.tolist())):
            if acts is None:
                expl: list[tuple[str, float]] = []
            elif query_acts is not None:
                expl = shared_concepts(query_acts, acts[j], self.concepts, top)
            else:
                expl = top_concepts(acts[j], self.concepts, top)
            r = recs[i]
            hits.append(Hit(i, float(s), expl, r["key"], r["path"], r["fields"]))
        return hits

    def search(self, vectors: Any, k: int = 10, *, where: Where = None, query_concepts: Any = None,
               exclude: Any = None, nprobe: int | None = None, explain_top: int = 5) -> list[list[Hit]]:
        """Nearest items to latent vectors (Q, L); one list of hits per query.

        ``query_concepts`` (Q, C), when known, lets each hit name the concepts it shares
        with the query; otherwise hits name their own strongest concepts.
        """
        q = _as_matrix(vectors, self.dim, "query vectors")
        self._check_k(k)
        qa = None
        if query_concepts is not None and self.concepts:
            qa = _as_matrix(query_concepts, len(self.concepts), "query concept activations")
            if len(qa) != len(q):
                raise BadInputError(f"{len(q)} query vectors but {len(qa)} rows of query concepts")
        excl = None if exclude is None else np.asarray(exclude, dtype=np.int64).reshape(-1)
        with self._lock:
            allowed = self._allowed(where, excl)
            assert self._store is not None
            scores, ids = self._store.search(q, k, allowed=allowed, nprobe=nprobe)
            return [self._hits(ids[r], scores[r], None if qa is None else qa[r], explain_top) for r in range(len(q))]

    def _encoder_or_fail(self, encoder: Any, what: str) -> Encoder:
        enc = as_encoder(encoder) if encoder is not None else self.encoder
        if enc is None:
            raise BadInputError(f"{what} needs the model: this index records none. On the command line pass "
                                "--model MODEL_DIR_OR_BUNDLE; in Python, encoder= (a CEIRModel, an ONNX Runtime or an "
                                "Encoder); or build the index with `ceir index build --model`")
        if self.concepts and list(enc.concepts) != self.concepts:
            raise BadInputError("the encoder's concepts differ from the index's; use the model that built the index")
        return enc

    def search_images(self, images: Any, k: int = 10, *, where: Where = None, encoder: Any = None) -> list[list[Hit]]:
        """Query by image(s): encoded with the model into latents and activations."""
        acts, lat = self._encoder_or_fail(encoder, "searching by image").encode_images(images)
        return self.search(lat, k, where=where, query_concepts=acts if self.concepts else None)

    def search_text(self, texts: str | Sequence[str], k: int = 10, *, where: Where = None,
                    encoder: Any = None) -> list[list[Hit]]:
        """Query by text: the text embedding through the concept head into the latent space."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or any(not str(t).strip() for t in texts):
            raise BadInputError("text queries must be non-empty strings")
        acts, lat = self._encoder_or_fail(encoder, "searching by text").encode_texts(texts)
        return self.search(lat, k, where=where, query_concepts=acts if self.concepts else None)

    def parse(self, expression: str) -> ConceptQuery:
        if not self.concepts:
            raise BadInputError("this index holds no concept activations, so it cannot answer concept queries")
        return parse_expression(expression, self.concepts)

    def search_concepts(self, expression: str | ConceptQuery, k: int = 10, *, where: Where = None,
                        threshold: float | None = None, ranking: str = "calibrated",
                        strict: bool = True, presence: str | None = None) -> list[Hit]:
        """Items most likely to show the + concepts and lack the - ones.

        What matches (``strict=True``): every + concept present and every - concept absent,
        where present follows ``presence`` (default ``index.presence_rule``): "calibrated",
        P(present) >= 0.5 under the index's label-free presence calibration (the probability
        the ranking uses), or "threshold", z above ``threshold`` (default
        ``index.presence_threshold``; absent means below it). Giving ``threshold`` without
        ``presence`` selects "threshold". "calibrated" falls back to the z threshold when
        the index has no calibration (fewer than 50 items); ``hit.presence`` says which rule
        decided. How matches rank: ``ranking="calibrated"`` (default) by the joint
        log-probability of the terms (every concept on one probability scale);
        ``ranking="margin"``, the earlier scoring, by the weakest margin over the z threshold
        (also what "calibrated" falls back to without a calibration); ties by the margin.
        ``strict=False`` ranks every item, matched or not (``hit.matched`` tells). Each hit
        lists, per term, its z-score, P(present), whether it is present and whether it is met.
        The earlier behaviour as a whole: ``presence="threshold", ranking="margin"``.
        """
        if ranking not in RANKINGS:
            raise BadInputError(f"ranking {ranking!r} is not one of {', '.join(RANKINGS)}")
        rule = check_rule(presence) if presence is not None else (
            "threshold" if threshold is not None else self.presence_rule)
        query = expression if isinstance(expression, ConceptQuery) else self.parse(expression)
        for t in query.terms:
            if t.concept not in self.concepts:
                raise UnknownConceptError(f"unknown concept {t.concept!r}; see `ceir index info` for the list")
        self._check_k(k)
        with self._lock:
            thr = self.presence_threshold if threshold is None else _finite_threshold(threshold)
            scores = score_concepts(query, self._acts, self.concepts, threshold=thr, rule=rule, ranking=ranking,
                                    calibration=lambda needed: self._calibrate_if_possible() if needed
                                    else self.calibration)
            mask = scores.matched.copy() if strict else np.ones(len(self), dtype=bool)
            allowed = self._allowed(where)
            if allowed is not None:
                mask &= np.isin(self._ids, allowed)
            top = top_rows(scores, mask, k)
            hits = self._hits(self._ids[top], scores.score[top], None, 0)
            for h, r in zip(hits, top):
                h.concepts = [(("NOT " if t.occur == "must_not" else "") + t.concept,
                               round(float(scores.z[r, i]), 4)) for i, t in enumerate(query.terms)]
                h.matched = bool(scores.matched[r])
                h.presence = scores.used
                h.terms = term_report(query, scores, int(r))
            return hits

    def concept_levels(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-concept 'absent' and 'present' levels (10th and 90th percentiles of the index)."""
        if self._quantiles is None:
            self._quantiles = concept_levels(self._acts)
        return self._quantiles

    def edit_concepts(self, activations: np.ndarray, *, add: Sequence[str] = (), remove: Sequence[str] = (),
                      set_values: Mapping[str, float] | None = None) -> np.ndarray:
        """CEIR label manipulation: raise added concepts to at least their 'present' level,
        lower removed ones to at most their 'absent' level, or set exact z-scores."""
        return edit_activations(activations, self.concepts, self.concept_levels, add=add, remove=remove,
                                set_values=set_values)

    def search_like(self, item_id: int, k: int = 10, *, add: Sequence[str] = (), remove: Sequence[str] = (),
                    set_values: Mapping[str, float] | None = None, where: Where = None, encoder: Any = None,
                    exclude_self: bool = True) -> list[Hit]:
        """Search by example with concept edits: the item's activations are edited, mapped to
        a latent by the model's latent encoder, and searched; without edits, its own latent."""
        if not self.concepts and (add or remove or set_values):
            raise BadInputError("this index holds no concepts, so concept edits are not possible")
        base = self.activations_of([item_id])[0]
        if add or remove or set_values:
            edited = self.edit_concepts(base, add=add, remove=remove, set_values=set_values)
            enc = self._encoder_or_fail(encoder, "searching with concept edits")
            latent = np.asarray(enc.concept_vector(edited[None, :]), np.float32)
        else:
            edited = base
            latent = self.vectors_of([item_id])
        self._check_k(k)
        if exclude_self and len(self) <= k:
            raise BadInputError(f"k={k} but only {len(self) - 1} other items exist; ask for fewer")
        hits = self.search(latent, k, where=where, query_concepts=edited[None, :] if self.concepts else None,
                           exclude=[item_id] if exclude_self else None)
        return hits[0]

    # -- clustering --------------------------------------------------------------------
    def cluster(self, k: int, *, where: Where = None, niter: int = 25, nredo: int = 3, seed: int = 0,
                max_points_per_centroid: int = 1024, name_top: int = 3) -> IndexClusters:
        """faiss k-means over the stored latents; clusters named by their dominant concepts."""
        ids = self._ids if not where else np.intersect1d(self._ids, self._meta.filter_ids(where))
        if not isinstance(k, (int, np.integer)) or k < 2:
            raise BadInputError(f"k must be an integer >= 2, got {k!r}")
        if len(ids) < k:
            raise BadInputError(f"cannot make {k} clusters from {len(ids)} items")
        ids = np.sort(ids)
        x = self.vectors_of(ids)
        km = faiss.Kmeans(self.dim, int(k), niter=niter, nredo=nredo, seed=seed, spherical=self.metric == "cosine",
                          max_points_per_centroid=max_points_per_centroid, verbose=False)
        km.train(x)
        _, assign = km.index.search(x, 1)
        assignment = assign[:, 0].astype(np.int64)
        if self.concepts:
            names, tops = name_clusters(self.activations_of(ids), assignment, int(k), self.concepts, name_top)
        else:
            names, tops = [f"cluster {c}" for c in range(k)], [[] for _ in range(k)]
        return IndexClusters(ids, assignment, np.array(km.centroids, dtype=np.float32), names, tops)

    # -- consistency -------------------------------------------------------------------
    def check(self) -> None:
        """Raise IncompatibleFileError unless vectors, activations and metadata hold the same ids."""
        n = len(self._ids)
        store_n = 0 if self._store is None else self._store.ntotal
        problems = []
        if self._acts.shape != (n, len(self.concepts)):
            problems.append(f"activations {self._acts.shape} for {n} ids")
        if store_n != n:
            problems.append(f"faiss holds {store_n} vectors for {n} ids")
        if self._meta.count() != n:
            problems.append(f"metadata holds {self._meta.count()} rows for {n} ids")
        if not problems:
            sorted_ids = np.sort(self._ids)
            if not np.array_equal(self._meta.all_ids(), sorted_ids):
                problems.append("metadata ids differ from vector ids")
            elif self._store is not None and not np.array_equal(self._store.ids(), sorted_ids):
                problems.append("faiss ids differ from the stored ids")
        gen = self._meta.get_meta("generation", 0)
        if gen != self.generation:
            problems.append(f"metadata generation {gen} != index generation {self.generation}")
        if problems:
            raise IncompatibleFileError("index is inconsistent: " + "; ".join(problems))

    def info(self) -> dict[str, Any]:
        store = self._store
        return {
            "count": len(self), "dim": self.dim, "metric": self.metric, "factory": self.factory,
            "n_concepts": len(self.concepts), "generation": self.generation,
            "nprobe": None if store is None else store.nprobe, "tuning": self.tuning,
            "gpu": bool(store and store.use_gpu),
            "encoder": None if self._encoder_ref is None else self._encoder_ref.to_json(),
            "presence_rule": self.presence_rule, "presence_threshold": self.presence_threshold,
            "present_probability": PRESENT_PROBABILITY,
            "calibration": None if self.calibration is None else self.calibration.summary(),
            "calibration_note": self.calibration_note,
        }

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write a new version atomically; the previous one stays loadable until the swap.

        Saving back to the directory this index was loaded from (or last saved to) requires
        that directory's current version to still be the one read: if another process saved
        in between, :class:`ConflictError` is raised and nothing is written, rather than
        silently dropping that process's items. Load again and re-apply the change, or pass
        ``force=True`` to replace the other version anyway. (How: :mod:`ceir_sdk.index.persist`.)
        """
        return persist.save_index(self, path, force=force)

    @classmethod
    def load(cls, path: str | Path, *, version: int | str | None = None, verify_checksums: bool = True,
             encoder: Any = None, use_gpu: bool | None = None, ignore_calibration: bool = False) -> ConceptIndex:
        """Load the current (or a given) version, verifying format, checksums and counts.

        An index saved before presence calibration existed loads with ``calibration_note``
        set (and a logged warning); a calibration is fitted from its stored activations at
        the first calibrated query, and kept by the next save. A calibration this version
        cannot read is an error unless ``ignore_calibration=True`` (then refit it with
        ``index.calibrate()``).
        """
        return persist.load_index(cls, path, version=version, verify_checksums=verify_checksums, encoder=encoder,
                                  use_gpu=use_gpu, ignore_calibration=ignore_calibration)
