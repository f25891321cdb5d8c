"""``ceir index build | add | remove | search | cluster | info``: the concept-aware FAISS index.

Past 500 lines because six commands share the reading of their inputs (embedding files, JSONL
metadata, image folders with class labels, --set fields, --where filters) and the printing of
hits; what they do with an index is the library's (ceir_sdk.index), not this module's.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ceir_sdk.cli.options import max_pixels_option, stashed_option
from ceir_sdk.errors import BadInputError


def _read_embeddings(path: str) -> tuple[Any, Any, list[str], Any, list[str] | None]:
    """(latent, concepts or None, concept names, ids or None, file paths or None) from
    .safetensors or .npz (no pickle), as `ceir encode` writes them."""
    import numpy as np

    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(p), framework="numpy") as fh:
            names = set(fh.keys())
            meta = fh.metadata() or {}
            arrays = {k: fh.get_tensor(k) for k in names}
        concept_names = json.loads(meta.get("concept_names", meta.get("concepts", "[]")))
        paths = json.loads(meta["paths"]) if "paths" in meta else None
    elif p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        concept_names = [str(c) for c in arrays.pop("concept_names", [])]
        paths = [str(p) for p in arrays.pop("paths")] if "paths" in arrays else None
        arrays.pop("image_ids", None)
    else:
        raise BadInputError(f"{p}: embeddings must be a .safetensors or .npz file with a 'latent' array")
    if "latent" not in arrays:
        raise BadInputError(f"{p} has no 'latent' array (found {sorted(arrays)}); name the latents 'latent'")
    acts = arrays.get("concepts")
    if acts is not None and len(concept_names) != acts.shape[1]:
        raise BadInputError(
            f"{p}: 'concepts' has {acts.shape[1]} columns but {len(concept_names)} concept names are given "
            "(safetensors metadata 'concepts' as a JSON list, or an npz array 'concept_names')"
        )
    return arrays["latent"], acts, concept_names, arrays.get("ids"), paths


def _read_metadata(path: str | None, n: int) -> list[dict[str, Any]] | None:
    if path is None:
        return None
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise BadInputError(f"{path}:{line_no} is not JSON: {exc}") from exc
    if len(rows) != n:
        raise BadInputError(f"{path} has {len(rows)} records for {n} items; give one JSON object per line")
    return rows


def _image_paths(images: Sequence[str]) -> tuple[list[str], list[str | None]]:
    """Image files under the given files and folders, with each one's class folder where the
    folder has the ImageFolder layout (every image in a subfolder), so ``--where label=zebra`` works."""
    from ceir_sdk.data.dataset import image_extensions

    exts = image_extensions()
    paths: list[str] = []
    labels: list[str | None] = []
    for item in images:
        p = Path(item)
        if p.is_dir():
            found = [f for f in sorted(p.rglob("*"))
                     if f.suffix.lower() in exts and f.is_file() and not any(
                         part.startswith(".") for part in f.relative_to(p).parts)]
            in_classes = bool(found) and all(len(f.relative_to(p).parts) > 1 for f in found)
            paths += [str(f) for f in found]
            labels += [f.relative_to(p).parts[0] if in_classes else None for f in found]
        elif p.is_file():
            paths.append(str(p))
            labels.append(None)
        else:
            raise BadInputError(f"{item} is neither an image file nor a folder")
    if not paths:
        raise BadInputError(f"no images found in {', '.join(images)}")
    return paths, labels


# Concurrent `ceir index add/remove` runs on one index: a save that finds another writer's
# version is retried on a fresh load (with backoff, see ceir_sdk.index.commit), so both changes
# land; the embedding work is not redone.
def _apply_and_save(index_dir: str, idx: Any, change: Callable[[Any], Any]) -> tuple[Any, Any]:
    from ceir_sdk.index import ConceptIndex
    from ceir_sdk.index.commit import save_change

    return save_change(idx, index_dir, change, lambda: ConceptIndex.load(index_dir))


def _parse_where(items: Sequence[str]) -> dict[str, Any] | None:
    """``field=value``, ``field!=value``, ``field>3``, ``field<=2`` (values parsed as JSON when possible)."""
    if not items:
        return None
    where: dict[str, Any] = {}
    for item in items:
        for op, key in (("!=", "$ne"), (">=", "$gte"), ("<=", "$lte"), ("=", "$eq"), (">", "$gt"), ("<", "$lt")):
            if op in item:
                name, raw = item.split(op, 1)
                try:
                    value = json.loads(raw)
                except ValueError:
                    value = raw
                if key in ("$eq", "$ne") and not isinstance(value, str) and value is not None:
                    # label=1 must find {"label": "1"} as well as {"label": 1}: the shell hides which one it is.
                    key, value = ("$in" if key == "$eq" else "$nin"), [value, raw.strip()]
                where.setdefault(name.strip(), {})[key] = value
                break
        else:
            raise BadInputError(f"--where {item!r}: write field=value, field!=value, field>value or field<value")
    return where


def _runtime_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--precision / --backend / --providers for ONNX bundles (int8 and, with OpenVINO on a CPU with
    bf16 units, bf16 are where a CPU gets its speed-up)."""
    # stashed (read by _backend), so the commands' signatures and the index library are unchanged
    fn = stashed_option("--backend", key="runtime_backend", type=click.Choice(["auto", "onnxruntime", "openvino"]),
                        default=None, help="ONNX bundles: inference backend (default: auto, the `ceir tune` choice "
                                           "for this machine when recorded, else onnxruntime).")(fn)
    fn = click.option("--providers", default=None,
                      help="ONNX bundles: 'auto', 'cpu', 'cuda', 'tensorrt' or onnxruntime provider names, "
                           "comma-separated (default: auto).")(fn)
    return click.option("--precision", type=click.Choice(["auto", "fp32", "int8", "fp16", "bf16"]), default=None,
                        help="ONNX bundles: which image graph runs (default: fp32 on CPU, fp16 on a GPU "
                             "build when exported; int8 needs `ceir export onnx --int8`; bf16 runs on "
                             "OpenVINO).")(fn)


def _backend() -> dict[str, Any]:
    """{"backend": --backend} when given (runtime options), else nothing."""
    ctx = click.get_current_context(silent=True)
    backend = None if ctx is None else ctx.meta.get("runtime_backend")
    return {} if backend is None else {"backend": backend}


def _on_error_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = stashed_option("--set", "set_fields", key="set_fields", multiple=True,
                        help="field=value stored with every item added, e.g. --set label=zebra --set split=test "
                             "(repeatable; values are JSON where they parse, else text).")(fn)
    fn = max_pixels_option(fn)
    return click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
                        help="Unreadable images: stop, or skip them and say which.")(fn)


def _runtime(precision: str | None, providers: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if precision is not None:
        options["precision"] = precision
    if providers is not None:
        names = [p.strip() for p in providers.split(",") if p.strip()]
        options["providers"] = names[0] if len(names) == 1 else names
    return options


def _first_of_each_key(records: list[dict[str, Any]]) -> list[int]:
    """Positions of the first record with each key; the repeats are reported and left out."""
    seen: dict[Any, int] = {}
    for i, record in enumerate(records):
        seen.setdefault(record.get("key"), i)
    first = sorted(seen.values()) if None not in seen else list(range(len(records)))
    if len(first) < len(records):
        kept = set(first)
        repeats = [str(records[i]["path"]) for i in range(len(records)) if i not in kept]
        click.echo(f"{len(repeats)} inputs are the same file as an earlier one (a symlink or a path given twice) "
                   f"and were left out: {', '.join(repeats[:3])}{' ...' if len(repeats) > 3 else ''}", err=True)
    return first


def _encode_images(enc: Any, paths: list[str], on_error: str) -> tuple[Any, Any, list[str], list[int]]:
    """Latents, activations, concept names and the input position of each row (skips left out)."""
    encode_files = getattr(enc, "encode_image_files", None)
    if encode_files is None:
        acts, lat = enc.encode_images(paths)
        return lat, acts, list(enc.concepts), list(range(len(paths)))
    from ceir_sdk.cli.logs import reported_here
    from ceir_sdk.data.images import NoUsableImagesError

    max_pixels = click.get_current_context().meta.get("max_pixels")
    try:
        with reported_here("ceir_sdk.data"):  # skips are reported just below (bundle runtimes return, not log, them)
            acts, lat, kept, skipped = encode_files(paths, on_error=on_error, max_pixels=max_pixels)
    except NoUsableImagesError as exc:
        if on_error != "skip":
            raise
        # Asked to skip what cannot be read, and nothing could: that is a result (e.g. the only files a
        # folder holds beyond those indexed already are broken), not a failure of the command.
        click.echo(f"skipped all {len(paths)} images: none could be read ({exc})", err=True)
        click.get_current_context().meta.update(ceir_skipped=len(paths), ceir_skip_reason=str(exc))
        return None, None, list(enc.concepts), []
    if skipped:
        shown = "; ".join(why if why.startswith(paths[i]) else f"{paths[i]}: {why}" for i, why in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        click.echo(f"skipped {len(skipped)} of {len(paths)} images that could not be read ({shown}{more})", err=True)
    return lat, acts, list(enc.concepts), kept


def _set_fields() -> dict[str, Any]:
    """The --set field=value pairs of this command."""
    fields: dict[str, Any] = {}
    for pair in click.get_current_context().meta.get("set_fields", ()):
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise click.UsageError(f"--set {pair!r} must look like field=value")
        if name in ("id", "key", "path"):
            raise click.UsageError(f"--set cannot change {name!r}: the index sets it for each item")
        try:
            fields[name] = json.loads(raw)
        except json.JSONDecodeError:
            fields[name] = raw
    return fields


def _gather(embeddings: str | None, encoder: Callable[[], Any] | None, images: Sequence[str], metadata: str | None,
            on_error: str = "fail", skip_keys: Callable[[list[str]], set[str]] | None = None,
            ) -> tuple[Any, Any, list[str], Any, list[dict[str, Any]] | None]:
    """Items from an embeddings file, or images embedded by ``encoder()`` (called only when there
    are images to embed, so a folder already in the index loads no model)."""
    lat, acts, names, ids, records = _gather_items(embeddings, encoder, images, metadata, on_error, skip_keys)
    fields = _set_fields()
    if fields and lat is not None:
        records = [{**record, **fields} for record in (records or [{} for _ in range(len(lat))])]
    return lat, acts, names, ids, records


def _gather_items(embeddings: str | None, encoder: Callable[[], Any] | None, images: Sequence[str],
                  metadata: str | None, on_error: str, skip_keys: Callable[[list[str]], set[str]] | None,
                  ) -> tuple[Any, Any, list[str], Any, list[dict[str, Any]] | None]:
    if (embeddings is None) == (not images):
        raise BadInputError("give either --embeddings FILE or --model DIR with images")
    if embeddings is not None:
        lat, acts, names, ids, paths = _read_embeddings(embeddings)
        records = _read_metadata(metadata, len(lat))
        if paths is not None and len(paths) == len(lat):  # from `ceir encode`: hits name their files
            records = [{"key": p, "path": p, **m} for p, m in zip(paths, records or [{} for _ in paths])]
            first = _first_of_each_key(records)
            if len(first) < len(records):
                lat, acts = lat[first], None if acts is None else acts[first]
                ids, records = None if ids is None else ids[first], [records[i] for i in first]
        return lat, acts, names, ids, records
    if encoder is None:
        raise BadInputError("images need a model to embed them: --model MODEL_DIR (or an ONNX bundle)")
    paths, labels = _image_paths(images)
    given = _read_metadata(metadata, len(paths)) or [{} for _ in paths]
    # Each file's absolute path is its key: unique in the index, so adding a folder twice does
    # not add its images twice, and it names the file wherever the index is searched from.
    records = [{"key": str(Path(p).resolve()), "path": p, **({"label": lab} if lab is not None else {}), **m}
               for p, lab, m in zip(paths, labels, given)]
    first = _first_of_each_key(records)  # a symlink, or a file named twice, is one item
    paths, records = [paths[i] for i in first], [records[i] for i in first]
    if skip_keys is not None:
        present = skip_keys([str(r["key"]) for r in records])
        if present:
            keep = [i for i, r in enumerate(records) if r["key"] not in present]
            click.echo(f"{len(present)} of {len(paths)} images are in the index already"
                       + ("; adding the others" if keep else ""), err=True)
            if not keep:
                return None, None, [], None, []
            paths, records = [paths[i] for i in keep], [records[i] for i in keep]
    lat, acts, names, kept = _encode_images(encoder(), paths, on_error)
    if lat is None:
        return None, None, [], None, []
    return lat, acts, names, None, [records[i] for i in kept]


def _term_text(t: dict[str, Any]) -> str:
    """``+striped z=+1.20 P=0.97 met``: a concept-expression term of a hit, for the terminal."""
    parts = [t["term"], f"z={t['z']:+.2f}"]
    if t.get("p_present") is not None:
        parts.append(f"P={t['p_present']:.2f}")
    if t.get("met") is not None:
        parts.append("met" if t["met"] else "NOT met")
    elif t.get("present") is not None:
        parts.append("present" if t["present"] else "absent")
    return " ".join(parts)


def _presence_text(hits: list[Any], threshold: float) -> str | None:
    rule = next((h.presence for h in hits if getattr(h, "presence", None)), None)
    if rule == "calibrated":
        return "present means calibrated P(present) >= 0.5"
    if rule == "threshold":
        return f"present means z > {threshold:g}, absent z < {threshold:g}"
    return None


def _print_hits(hits: list[Any], as_json: bool, threshold: float = 0.0) -> None:
    if as_json:
        click.echo(json.dumps([h.as_dict() for h in hits], indent=2))
        return
    rule = _presence_text(hits, threshold)
    if rule:
        click.echo(f"({rule})")
    for rank, h in enumerate(hits, 1):
        name = h.key or h.path or f"#{h.id}"
        status = "" if h.matched is None else ("  matched" if h.matched else "  NOT matched")
        click.echo(f"{rank:>3}. {name}  id={h.id}  score={h.score:.4f}{status}")
        if h.terms:
            click.echo("     terms: " + "; ".join(_term_text(t) for t in h.terms))
        else:
            why = ", ".join(f"{c} ({v:+.2f})" for c, v in h.concepts)
            if why:
                click.echo(f"     because: {why}")


def _stale_note(idx: Any, index_dir: str) -> None:
    """Say (once, on stderr) that the presence calibration no longer describes the index: nothing
    refits it behind the user's back, `ceir index calibrate` does."""
    cal = idx.calibration
    if cal is not None and cal.stale():
        click.echo(f"note: the presence calibration was fitted on {cal.n_fit} items and {cal.changed_since_fit} "
                   f"changed since; refit it with `ceir index calibrate {index_dir}` (seconds)", err=True)


@click.group()
def index() -> None:
    """Concept-aware FAISS index: build, add, remove, search, cluster, calibrate, info."""

@index.command("build")
@click.argument("out", type=click.Path(file_okay=False))
@click.argument("images", nargs=-1)
@click.option("--embeddings", type=click.Path(exists=True, dir_okay=False),
              help="Precomputed .safetensors/.npz with 'latent' (and 'concepts', 'concept_names', 'paths'), "
                   "as `ceir encode --output both` writes it.")
@click.option("--model", type=click.Path(exists=True, file_okay=False),
              help="Fitted CEIR model dir or ONNX bundle, to embed IMAGES and answer text queries later.")
@click.option("--metadata", type=click.Path(exists=True, dir_okay=False), help="JSONL, one record per item.")
@click.option("--metric", type=click.Choice(["l2", "ip", "cosine"]), default="l2", show_default=True)
@click.option("--factory", default=None, help="faiss index-factory string (default: chosen by size).")
@click.option("--no-tune", is_flag=True, help="Skip measuring nprobe for the target recall.")
@click.option("--target-recall", type=float, default=0.97, show_default=True)
@_runtime_options
@_on_error_option
def build_cmd(out: str, images: tuple[str, ...], embeddings: str | None, model: str | None,
          metadata: str | None, metric: str, factory: str | None, no_tune: bool, target_recall: float,
          precision: str | None, providers: str | None, on_error: str) -> None:
    """Build an index at OUT from embeddings, or from IMAGES embedded with --model."""
    from ceir_sdk.index import ConceptIndex, EncoderRef, load_encoder

    # Providers choose this machine's hardware and are not recorded; precision chooses the graph
    # (the numbers) and is, so every later add and query runs the same one.
    ref = None if model is None else EncoderRef.for_model(model, precision=precision)
    runtime = {**_runtime(precision, providers), **_backend()}
    encoder = None if model is None else (lambda: load_encoder(model, **runtime))
    lat, acts, names, ids, meta = _gather(embeddings, encoder, images, metadata, on_error)
    if lat is None:
        reason = click.get_current_context().meta.get("ceir_skip_reason", "none of the images could be read")
        raise BadInputError(f"{reason}; there is nothing to build an index from")
    idx = ConceptIndex.build(lat, acts, names if acts is not None else (), ids=ids, metadata=meta, metric=metric,
                             factory=factory, tune=not no_tune, target_recall=target_recall)
    idx.encoder_ref = ref
    path = idx.save(out)
    click.echo(f"Built {len(idx)} items ({idx.factory}, {len(idx.concepts)} concepts) -> {path}")

@index.command("add")
@click.argument("index_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("images", nargs=-1)
@click.option("--embeddings", type=click.Path(exists=True, dir_okay=False))
@click.option("--model", type=click.Path(exists=True, file_okay=False),
              help="Model to embed IMAGES (default: the one the index was built with).")
@click.option("--metadata", type=click.Path(exists=True, dir_okay=False))
@click.option("--other-model", is_flag=True,
              help="Allow --model to differ from the model the index was built with (its latents then mix "
                   "two spaces: only for a model known to be equivalent).")
@_runtime_options
@_on_error_option
def add_cmd(index_dir: str, images: tuple[str, ...], embeddings: str | None, model: str | None,
        metadata: str | None, other_model: bool, precision: str | None, providers: str | None,
        on_error: str) -> None:
    """Add items to an index and save a new version (images it holds already are left out)."""
    import numpy as np

    from ceir_sdk.index import ConceptIndex, load_encoder

    idx = ConceptIndex.load(index_dir)
    encoder = None
    if images and (model is not None or idx.encoder_ref is not None):
        # The library reconciles model and precision with the ones that built the index, before any
        # image is read; the model itself loads only when some images are new.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            where, options = idx.plan_add(model, other_model=other_model, **_runtime(precision, providers))
        for warning in caught:
            click.echo(f"warning: {warning.message}", err=True)
        encoder = functools.partial(load_encoder, where, **{**options, **_backend()})
    lat, acts, names, ids, meta = _gather(embeddings, encoder, images, metadata, on_error,
                                          skip_keys=idx.keys_present)
    if lat is None:
        unreadable = click.get_current_context().meta.get("ceir_skipped")
        click.echo(f"Added 0 items{f', skipped {unreadable} unreadable' if unreadable else ''}; "
                   f"the index holds {len(idx)}")
        return
    if acts is not None and names != idx.concepts:
        raise BadInputError("the new items' concepts differ from the index's; embed them with the same model")

    def apply(current: Any) -> Any:
        keys = [r.get("key") for r in meta] if meta else []
        present = current.keys_present([k for k in keys if k]) if keys else set()
        if not present:
            return current.add(lat, acts, ids=ids, metadata=meta)
        # Another writer added some of the same files meanwhile: add only the rest.
        assert meta is not None
        rows = np.array([i for i, key in enumerate(keys) if key not in present], dtype=np.int64)
        return current.add(lat[rows], None if acts is None else acts[rows],
                           ids=None if ids is None else np.asarray(ids)[rows],
                           metadata=[meta[i] for i in rows])

    idx, new = _apply_and_save(index_dir, idx, apply)
    click.echo(f"Added {len(new)} items; the index holds {len(idx)}")
    _stale_note(idx, index_dir)

@index.command("remove")
@click.argument("index_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("ids", nargs=-1, type=int, required=True)
def remove_cmd(index_dir: str, ids: tuple[int, ...]) -> None:
    """Remove items by id and save a new version."""
    from ceir_sdk.index import ConceptIndex

    idx, n = _apply_and_save(index_dir, ConceptIndex.load(index_dir), lambda current: current.remove(list(ids)))
    click.echo(f"Removed {n} items; the index holds {len(idx)}")
    _stale_note(idx, index_dir)

@index.command("search")
@click.argument("index_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--concepts", "expression", help='Concept expression, e.g. "+striped -grass 2*water".')
@click.option("--text", help="Text query (needs the model).")
@click.option("--image", type=click.Path(exists=True, dir_okay=False), help="Query image (needs the model).")
@click.option("--like", "like", type=int, help="Query by the item with this id.")
@click.option("--add", "add_c", multiple=True, help="With --like: concept to add (repeatable).")
@click.option("--remove", "remove_c", multiple=True, help="With --like: concept to remove (repeatable).")
@click.option("-k", "k", type=int, default=10, show_default=True)
@click.option("--where", multiple=True, help="Metadata filter: field=value, field>3 ... (repeatable).")
@click.option("--model", type=click.Path(exists=True, file_okay=False),
              help="Model dir or ONNX bundle (default: the one the index was built with).")
@click.option("--presence", type=click.Choice(["calibrated", "threshold"]), default=None,
              help="With --concepts: what 'present' means. calibrated: P(present) >= 0.5 under the index's "
                   "presence calibration; threshold: z-score above --threshold (the earlier rule). "
                   "Default: the index's presence_rule (calibrated unless set otherwise).")
@click.option("--threshold", type=float, default=None,
              help="With --concepts: the z threshold (default: the index's, 0); implies --presence threshold "
                   "unless --presence is given.")
@click.option("--strict/--no-strict", default=True, show_default=True,
              help="With --concepts: only items matching every +/- term, or rank every item (--no-strict).")
@click.option("--ranking", type=click.Choice(["calibrated", "margin"]), default="calibrated", show_default=True,
              help="With --concepts: joint probability, or the earlier weakest z-margin.")
@click.option("--json", "as_json", is_flag=True)
@_runtime_options
def search_cmd(index_dir: str, expression: str | None, text: str | None, image: str | None, like: int | None,
           add_c: tuple[str, ...], remove_c: tuple[str, ...], k: int, where: tuple[str, ...],
           model: str | None, presence: str | None, threshold: float | None, strict: bool, ranking: str,
           as_json: bool, precision: str | None, providers: str | None) -> None:
    """Search by concepts, text, image or example (with concept edits).

    Concept hits say whether they matched and, per term, the z-score, P(present) and
    whether the term is met."""
    from ceir_sdk.index import ConceptIndex, load_encoder

    modes = [m for m in (expression, text, image, like) if m is not None]
    if len(modes) != 1:
        raise BadInputError("give exactly one of --concepts, --text, --image, --like")
    if (add_c or remove_c) and like is None:
        raise BadInputError("--add/--remove edit the concepts of an example: use them with --like ID")
    if expression is None and (presence is not None or threshold is not None or not strict
                               or ranking != "calibrated"):
        raise BadInputError("--presence, --threshold, --no-strict and --ranking apply to --concepts queries")
    idx = ConceptIndex.load(index_dir)
    runtime = {**_runtime(precision, providers), **_backend()}
    if model is not None:
        idx.encoder = load_encoder(model, **runtime)
    elif runtime and expression is None:  # the recorded model, its precision unless overridden
        idx.encoder = idx.recorded_encoder(**runtime)
    flt = _parse_where(where)
    if expression is not None:
        hits = idx.search_concepts(expression, k, where=flt, threshold=threshold, ranking=ranking,
                                   strict=strict, presence=presence)
        _stale_note(idx, index_dir)
    elif text is not None:
        hits = idx.search_text(text, k, where=flt)[0]
    elif image is not None:
        hits = idx.search_images([image], k, where=flt)[0]
    else:
        assert like is not None
        hits = idx.search_like(like, k, add=add_c, remove=remove_c, where=flt)
    _print_hits(hits, as_json, idx.presence_threshold if threshold is None else threshold)
    if not hits and not as_json and expression is None:
        click.echo("no hits" + (f": no item's metadata matches --where {' '.join(where)} (check the field "
                                "names and values)" if flt else ""), err=True)
    if expression is not None and strict and len(hits) < k:
        click.echo(f"only {len(hits)} items{' (within --where)' if flt else ''} match every + and - term; "
                   "--no-strict ranks every item" + ("" if presence == "threshold" or threshold is not None
                                                     else ", --presence threshold uses the z threshold"), err=True)

@index.command("cluster")
@click.argument("index_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-k", "k", type=int, required=True, help="Number of clusters.")
@click.option("--where", multiple=True, help="Cluster only items matching these filters.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write per-item assignments as JSONL.")
@click.option("--json", "as_json", is_flag=True)
def cluster_cmd(index_dir: str, k: int, where: tuple[str, ...], seed: int, out: str | None, as_json: bool) -> None:
    """k-means over the index; clusters named by their concepts."""
    from ceir_sdk.atomic import atomic_write_text
    from ceir_sdk.index import ConceptIndex

    idx = ConceptIndex.load(index_dir)
    res = idx.cluster(k, where=_parse_where(where), seed=seed)
    if out:
        lines = [json.dumps({"id": int(i), "cluster": int(c), "name": res.names[int(c)]})
                 for i, c in zip(res.ids, res.assignment)]
        atomic_write_text(Path(out), "\n".join(lines) + "\n")
    if as_json:
        click.echo(json.dumps(res.as_dict(), indent=2))
        return
    for c, (name, size) in enumerate(zip(res.names, res.sizes)):
        click.echo(f"cluster {c:>3}  {size:>7} items  {name}")

@index.command("calibrate")
@click.argument("index_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the row sample on large indexes.")
def calibrate_cmd(index_dir: str, seed: int) -> None:
    """Refit the presence calibration on the index's items and save a new version.

    Adds and removes never refit it (their cost stays flat); once over 10% of the items changed
    since the fit, `index info` says it is stale and `index add` suggests this command."""
    import time

    from ceir_sdk.index import ConceptIndex

    started = time.perf_counter()
    idx, cal = _apply_and_save(index_dir, ConceptIndex.load(index_dir), lambda current: current.calibrate(seed=seed))
    click.echo(f"Calibrated {len(cal.concepts)} concepts on {cal.n_fit} items in {time.perf_counter() - started:.1f} s "
               f"(including load and save); the index holds {len(idx)}")

@index.command("info")
@click.argument("index_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--concepts", "show_concepts", is_flag=True, help="List the concept names.")
@click.option("--json", "as_json", is_flag=True)
def info_cmd(index_dir: str, show_concepts: bool, as_json: bool) -> None:
    """Size, type, versions and concepts of a saved index (verified on load)."""
    from ceir_sdk.index import ConceptIndex
    from ceir_sdk.index.persist import read_pointer, versions

    idx = ConceptIndex.load(index_dir)
    data = {**idx.info(), "version": read_pointer(Path(index_dir))["version"],
            "versions_on_disk": versions(Path(index_dir))}
    if show_concepts or as_json:
        data["concepts"] = idx.concepts
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key == "concepts":
            continue
        if key == "calibration" and isinstance(value, dict):
            # Per-concept shares are many; the text form gives their range, --json all of them.
            shares = sorted(value.get("present_share", {}).items(), key=lambda kv: kv[1])
            value = {k: v for k, v in value.items() if k != "present_share"}
            if shares:
                value["present_share"] = (f"{shares[0][1]:.2f} ({shares[0][0]}) to {shares[-1][1]:.2f} "
                                          f"({shares[-1][0]}) over {len(shares)} concepts; --json lists each")
        click.echo(f"{key}: {value}")
    if show_concepts:
        click.echo("concepts: " + ", ".join(idx.concepts))


def register(cli: click.Group) -> None:
    cli.add_command(index)
