"""``ceir fit | encode | explain | cluster``: the CEIR model from the command line."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ceir_sdk.cli.options import max_pixels_option, stashed_option
from ceir_sdk.concepts.conceptset import FORMAT as CONCEPT_SET_FORMAT
from ceir_sdk.concepts.conceptset import ConceptSet
from ceir_sdk.errors import BadInputError


@dataclass
class _Inputs:
    """Images or features to work on, plus whatever ground truth came with them."""

    images: Any = None  # passed to the backbone (arrays, paths, folder)
    features: Any = None  # (N, D) float32 when given as .npy
    thumbnails: Any = None  # (N, H, W, 3) uint8 for plots, when cheap to have
    labels: Any = None
    ids: list[str] = field(default_factory=list)
    paths: list[str | None] = field(default_factory=list)  # the file behind each row, when there is one
    description: str = ""
    world: Any = None


def _input_options(func: Any) -> Any:
    options = [
        click.argument("inputs", nargs=-1, type=click.Path(exists=True, path_type=Path)),
        click.option("--dataset", help="A drawn world domain, e.g. world10 or world100_20."),
        click.option("--split", default="train", show_default=True, type=click.Choice(["train", "val", "test"])),
        click.option("-n", "--count", "count", default=2000, show_default=True, help="Images taken from --dataset."),
        click.option("--image-size", default=32, show_default=True, type=click.Choice(["32", "64"])),
        click.option("--features", "features_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Precomputed backbone features (.npy, N x D) instead of images."),
        click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
                     help="Unreadable images: stop, or skip them and report."),
        max_pixels_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _load_inputs(
    inputs: tuple[Path, ...], dataset: str | None, split: str, count: int, image_size: str,
    features_path: Path | None,
) -> _Inputs:
    import numpy as np

    given = sum([bool(inputs), dataset is not None, features_path is not None])
    if given != 1:
        raise click.UsageError("give exactly one of: image files/folders, --dataset NAME, --features FILE.npy")
    if features_path is not None:
        try:
            feats = np.load(features_path, allow_pickle=False)
        except ValueError as exc:
            raise BadInputError(f"{features_path} is not a plain .npy array ({exc})") from exc
        return _Inputs(features=feats, description=f"features {features_path}")
    if dataset is not None:
        from ceir_sdk.worlds import World

        try:
            world = World(dataset, image_size=int(image_size))
        except (KeyError, ValueError) as exc:
            raise BadInputError(f"unknown dataset {dataset!r}: {exc}") from exc
        batches = list(world.batches(count, split=split, batch_size=512))
        images = np.concatenate([b.images for b in batches])
        labels = np.concatenate([b.labels for b in batches])
        return _Inputs(images=images, thumbnails=images, labels=labels, world=world,
                       description=f"{dataset} {split}[0:{count}] at {image_size}px")
    paths = [str(p) for p in inputs]
    return _Inputs(images=paths[0] if len(paths) == 1 else paths, description=", ".join(paths[:3]))


def _features(model_or_backbone: Any, inp: _Inputs, on_error: str, progress: bool = True) -> Any:
    """Backbone features for the inputs; folders go through the data layer's skip/fail policy."""
    import numpy as np

    if inp.features is not None:
        return inp.features
    backbone = model_or_backbone
    encode = getattr(backbone, "encode", None)
    max_pixels = click.get_current_context().meta.get("max_pixels")
    from_files = not isinstance(inp.images, np.ndarray)  # arrays need no decoding policy
    if from_files and not callable(encode):
        from ceir_sdk.plugin_bases.backbone import refuse_policies_without_encode

        # a backbone without encode() would silently ignore --on-error skip and --max-pixels
        refuse_policies_without_encode(backbone, on_error=on_error, max_pixels=max_pixels)
    elif from_files and callable(encode):
        options = {} if max_pixels is None else {"max_pixels": max_pixels}
        from ceir_sdk.cli.logs import reported_here

        with reported_here("ceir_sdk.data"):  # the skip summary is echoed below
            enc = encode(inp.images, progress=progress, on_error=on_error, **options)
        inp.ids = list(enc.ids)
        inp.paths = list(enc.paths)
        if enc.report is not None and getattr(enc.report, "skipped", None):
            click.echo(enc.report.summary(), err=True)
        inp.thumbnails = _thumbnails(enc.paths)
        return enc.features
    from ceir_sdk.model.ceir import backbone_features

    return backbone_features(backbone, inp.images, progress=progress)


def _thumbnails(paths: list[str | None]) -> list[Any] | None:
    from PIL import Image

    out = []
    for p in paths:
        if p is None:
            return None
        try:
            with Image.open(p) as opened:
                im = opened.convert("RGB")
            im.thumbnail((96, 96))
            out.append(im)
        except OSError:
            return None
    return out


def _save_array(path: Path, arrays: dict[str, Any], labels: dict[str, list[str]] | None = None) -> None:
    """.npy (one array), .npz (arrays plus string arrays for ``labels``) or .safetensors (arrays,
    with ``labels`` as JSON metadata): the forms `ceir index build --embeddings` reads."""
    import numpy as np

    from ceir_sdk.atomic import atomic_write_bytes

    labels = labels or {}
    buf = io.BytesIO()
    if path.suffix == ".npz":
        everything: dict[str, Any] = {**arrays, **{k: np.asarray(v, dtype=str) for k, v in labels.items()}}
        np.savez(buf, **everything)
    elif path.suffix == ".safetensors":
        from safetensors.numpy import save

        buf.write(save({k: np.ascontiguousarray(v, np.float32) for k, v in arrays.items()},
                       metadata={k: json.dumps(v, ensure_ascii=False) for k, v in labels.items()}))
    elif len(arrays) == 1:
        np.save(buf, next(iter(arrays.values())), allow_pickle=False)
    else:
        raise click.UsageError("--output both writes two arrays: use a .npz or .safetensors file name")
    atomic_write_bytes(path, buf.getvalue())


def _parse_options(pairs: tuple[str, ...], flag: str = "--latent-option") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise click.UsageError(f"{flag} {pair!r} must look like key=value")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def _read_concepts(spec: str, world: Any, include_class_names: bool) -> tuple[list[str], dict[str, Any]]:
    from ceir_sdk.model.world_concepts import label_information, oracle_concepts

    if spec == "oracle":
        if world is None:
            raise click.UsageError("--concepts oracle needs --dataset (a drawn world)")
        return (oracle_concepts(world, include_class_names=include_class_names),
                label_information(include_class_names=include_class_names))
    path = Path(spec)
    if not path.is_file():
        from ceir_sdk.concepts.from_source import concept_source_names

        raise BadInputError(
            f"--concepts {spec!r} is neither 'oracle', a file (text, one concept per line; JSON) nor a concept "
            f"source; the concept sources: {', '.join(concept_source_names()) or 'none installed'} "
            "(e.g. static:world10, openai:gpt-4o; `ceir plugins` lists them)")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"concept file {spec!r} is not valid JSON ({exc})") from None
        if isinstance(data, dict) and data.get("format") == CONCEPT_SET_FORMAT:
            return _concept_set_file(path, data)
        phrases = data.get("concepts", data) if isinstance(data, dict) else data
        if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
            raise BadInputError(f"concept file {spec!r}: expected a concept set from `ceir concepts generate`, "
                                "a JSON list of phrases, or {\"concepts\": [phrases]}")
        info = data.get("label_information", {}) if isinstance(data, dict) else {}
    else:
        phrases, info = [line for line in text.splitlines() if line.strip()], {}
    return phrases, info or {"concept_source": str(path), "class_names_in_prompts": None,
                             "class_names_in_concepts": None, "note": "not stated by the concept file"}


def _concept_set_file(path: Path, data: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Phrases and label information from a concept set written by `ceir concepts generate`/`filter`."""
    concept_set = ConceptSet.from_dict(data, where=str(path))
    class_names = {name.lower() for name in concept_set.class_names}
    info = {
        "concept_source": concept_set.source,
        "concept_model": concept_set.model,
        # Sources that write per class (LLMs) name the classes in their prompts; files have no prompts.
        "class_names_in_prompts": bool(concept_set.model) and bool(class_names),
        "class_names_in_concepts": any(p.lower() in class_names for p in concept_set.phrases),
        "filters": [step.name for step in concept_set.filters],
        "labels_used_in_fit": False,
    }
    return concept_set.phrases, info


def _scores(labels: Any, predicted: Any) -> str:
    from ceir_sdk.metrics import clustering_scores

    s = clustering_scores(labels, predicted)
    return "  ".join(f"{k}={v:.3f}" for k, v in s.items())


@click.command("fit")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@_input_options
@click.option("--concepts", "concepts_spec", default="oracle", show_default=True,
              help="'oracle' (worlds), a text file with one concept per line, a ConceptSet JSON, or a concept "
                   "source (static:world10, openai:gpt-4o, ...) asked about the --dataset classes and filtered, "
                   "as `ceir demo --concepts` does.")
@click.option("--include-class-names", is_flag=True, help="Add the class names to oracle concepts (leaks labels).")
@click.option("--backbone", default="open-clip:ceir-world", show_default=True)
@click.option("--backbone-option", "backbone_options", multiple=True,
              help="key=value passed to the backbone, e.g. seed=7 or device=cpu; saved with the model.")
@click.option("--latent", default="vae", show_default=True, help="Latent model: vae, pca, identity, ...")
@click.option("--latent-option", "latent_options", multiple=True, help="key=value, e.g. latent_dim=64.")
@click.option("--concept-model", default=None,
              help="A separate CLIP whose image-text scores are the concept targets (a backbone name, e.g. "
                   "open-clip:ViT-B-16); the backbone learns them through the projection, as the reference does. "
                   "Default: the backbone's own text tower (the projection is then its zero-shot scores).")
@click.option("--concept-model-option", "concept_model_options", multiple=True,
              help="key=value passed to the concept model, e.g. seed=7; saved with the model.")
@click.option("--projection-init", type=click.Choice(["auto", "random", "text"]), default="auto", show_default=True,
              help="Start of the projection: random (the reference's), text (the concept text embeddings; "
                   "needs the same width), auto (random with a concept model, text without).")
@click.option("--visibility-cutoff", default="auto", show_default=True,
              help="'auto' (median - 3 robust SD of the top-5 mean activations), 'reference' (0.25) or a number.")
@click.option("--concept-template", "concept_templates", multiple=True, default=("{}",), show_default=True,
              help="How concepts are phrased for the text encoder, e.g. 'a photo of {}.' ({} = the concept); "
                   "repeat it to average several templates.")
@click.option("--presence-by-parts/--no-presence-by-parts", default=True, show_default=True,
              help="A description ('red dotted round') counts as present only where the concepts among its "
                   "words ('red', 'round') are; turn off when word subsets do not imply each other "
                   "('sea lion' / 'lion').")
@click.option("--seed", default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace a model already saved in OUT_DIR.")
def fit_cmd(out_dir: Path, inputs: tuple[Path, ...], dataset: str | None, split: str, count: int,
            image_size: str, features_path: Path | None, on_error: str, concepts_spec: str,
            include_class_names: bool, backbone: str, backbone_options: tuple[str, ...], latent: str,
            latent_options: tuple[str, ...], concept_model: str | None, concept_model_options: tuple[str, ...],
            projection_init: str, visibility_cutoff: str, concept_templates: tuple[str, ...], presence_by_parts: bool,
            seed: int, overwrite: bool) -> None:
    """Fit a CEIR model on TRAINING images (or features) and save it to OUT_DIR."""
    from ceir_sdk.model import BottleneckConfig, CEIRModel

    parsed_backbone_options = _parse_options(backbone_options, "--backbone-option")
    parsed_latent_options = _parse_options(latent_options)
    if (out_dir / "config.json").exists() and not overwrite:
        # Checked before the (long) fit, so the answer comes at once.
        raise click.UsageError(f"{out_dir} holds a fitted model already; pass --overwrite to replace it, "
                               "or choose another OUT_DIR")

    if split == "test":
        click.echo("warning: fitting on the test split; evaluate on other data", err=True)
    from ceir_sdk.concepts.from_source import is_concept_source

    # A concept-source name (as `ceir demo --concepts` takes) unless a file of that name exists.
    source = (concepts_spec if concepts_spec != "oracle" and not Path(concepts_spec).is_file()
              and is_concept_source(concepts_spec) else None)
    if source is not None and dataset is None:
        raise click.UsageError(f"--concepts {source!r} asks the source about the classes of --dataset; without a "
                               f"drawn world, write the concepts first (`ceir concepts generate {source} --class ... "
                               "-o concepts.json`, then `ceir concepts filter`) and pass the file")
    inp = _load_inputs(inputs, dataset, split, count, image_size, features_path)
    concepts, info = ([], {}) if source is not None else _read_concepts(concepts_spec, inp.world, include_class_names)
    try:
        cutoff: float | str = (visibility_cutoff if visibility_cutoff in ("auto", "reference")
                               else float(visibility_cutoff))
    except ValueError:
        raise click.BadParameter(f"{visibility_cutoff!r} is neither 'auto', 'reference' nor a number",
                                 param_hint="--visibility-cutoff") from None
    model = CEIRModel(backbone, latent=latent, latent_options=parsed_latent_options,
                      bottleneck=BottleneckConfig(visibility_cutoff=cutoff, init=projection_init), seed=seed,
                      concept_template=list(concept_templates), presence_by_parts=presence_by_parts,
                      backbone_options=parsed_backbone_options, concept_model=concept_model,
                      concept_model_options=_parse_options(concept_model_options, "--concept-model-option"))
    if source is not None:
        from ceir_sdk.concepts.from_source import concepts_from_source

        # Generated and filtered as `ceir demo --concepts SOURCE` does (concepts/from_source.py).
        sourced = concepts_from_source(source, list(inp.world.class_names), domain=dataset, backbone_name=backbone,
                                       backbone=model.backbone)
        concepts, info = sourced.concept_set.phrases, sourced.label_information
        for step in sourced.steps:
            click.echo(f"concepts {step.name:16s} {step.before:5d} -> {step.after:5d}", err=True)
    feats = _features(model.backbone, inp, on_error)
    concept_feats = None
    from ceir_sdk.model import concept_model as cm

    separate = cm.for_fit(model)
    if separate is not None:
        if inp.features is not None:
            raise click.UsageError("--features holds the backbone's features only; a --concept-model must encode "
                                   "the same images: give the images (or --dataset) instead")
        concept_feats = _features(separate, inp, on_error)
        if len(concept_feats) != len(feats):
            raise BadInputError(f"the concept model read {len(concept_feats)} of the images, the backbone "
                                f"{len(feats)}; use --on-error fail to find the image one of them cannot read")
    model.fit_features(feats, concepts, label_information=info, data_description=inp.description,
                       concept_features=concept_feats)
    model.save(out_dir)
    p = model.provenance
    rep = p["bottleneck"]
    click.echo(f"fitted on {p['n_train']} images, validation {p['n_validation']} ({inp.description})")
    click.echo(f"concepts: {len(model.concepts)} kept of {p['concepts_given']}")
    if rep.get("targets") == "concept model":
        click.echo(f"projection: trained towards the concept model's scores from a {rep['init']} start, "
                   f"{rep['steps_run']} steps, validation similarity {rep['initial_val_similarity']:.3f} -> "
                   f"{rep['best_val_similarity']:.3f}")
    else:
        click.echo(f"{rep.get('note') or 'projection: the backbone own zero-shot scores'} "
                   f"(steps_run {rep['steps_run']})")
    drops = (("not visible", rep["dropped_not_visible"]), ("not learnable", rep["dropped_not_learnable"]))
    for title, dropped in drops:
        if dropped:
            shown = ", ".join(f"{c} ({v:.2f})" for c, v in list(dropped.items())[:8])
            click.echo(f"  dropped {len(dropped)} {title}: {shown}{' ...' if len(dropped) > 8 else ''}")
    click.echo(f"latent: {latent}, {model.latent_model.latent_dim} dims; "
               f"times: " + ", ".join(f"{k} {v:.1f}s" for k, v in p["timings_s"].items()))
    click.echo(f"label information: {json.dumps(model.label_information)}")
    click.echo(f"saved to {out_dir}")


def _bundle_exporter(model_dir: Path) -> tuple[str, Any] | None:
    """(name, exporter) when ``model_dir`` is an exported bundle (asked of the exporters), else None."""
    if (model_dir / "config.json").is_file():
        return None
    from ceir_sdk.plugins import exporter_for

    return exporter_for(model_dir)


def _load_model(model_dir: Path) -> Any:
    from ceir_sdk.errors import BadInputError

    bundle = _bundle_exporter(model_dir)
    if bundle is not None:
        raise BadInputError(
            f"{model_dir} is an exported bundle ({bundle[0]}), not a fitted model directory: `ceir encode` and "
            "`ceir cluster` run the torch model. For a bundle use `ceir index build/search --model BUNDLE`, "
            "`ceir explain BUNDLE IMAGES` or the exporter's runtime (no torch needed), or pass the model directory "
            "the bundle was exported from"
        )
    try:
        from ceir_sdk.model import CEIRModel
    except ModuleNotFoundError as exc:  # torch is an extra of the core
        raise BadInputError(
            f"this command needs {exc.name} (the torch model); install it with pip install 'ceir-sdk[train]' "
            "or serve an exported bundle with its exporter's torch-free runtime (`ceir export onnx`)"
        ) from exc
    options = _parse_options(click.get_current_context().meta.get("backbone_options", ()), "--backbone-option")
    return CEIRModel.load(model_dir, backbone_options=options)


def _load_options(func: Any) -> Any:
    """--backbone-option for commands that load a saved model (a device, or a seed the model lacks)."""
    return stashed_option(
        "--backbone-option", "backbone_options", key="backbone_options", multiple=True,
        help="key=value for the model's backbone, e.g. device=cuda; adds to the options saved with the model.",
    )(func)


@click.command("encode")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_load_options
@_input_options
@click.option("--output", type=click.Choice(["latent", "concepts", "both"]), default="latent", show_default=True)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help=".npy (one array), or .npz / .safetensors (arrays plus image ids, file paths and concept "
                   "names, ready for `ceir index build --embeddings`).")
def encode_cmd(model_dir: Path, inputs: tuple[Path, ...], dataset: str | None, split: str, count: int,
               image_size: str, features_path: Path | None, on_error: str, output: str, out_path: Path) -> None:
    """Encode images with a fitted model: latent, concept activations, or both."""
    model = _load_model(model_dir)
    inp = _load_inputs(inputs, dataset, split, count, image_size, features_path)
    feats = model.encode_features(_features(model.backbone if inp.features is None else None, inp, on_error),
                                  output="both")
    arrays = {"concepts": feats[0], "latent": feats[1]}
    if output != "both":
        arrays = {output: arrays[output]}
    labels = {"image_ids": inp.ids or [str(i) for i in range(len(feats[1]))]}
    if inp.paths and all(inp.paths):
        labels["paths"] = [str(Path(p).resolve()) for p in inp.paths if p]
    if "concepts" in arrays:
        labels["concept_names"] = list(model.concepts)
    _save_array(out_path, arrays, labels)
    shapes = ", ".join(f"{k} {v.shape}" for k, v in arrays.items())
    click.echo(f"encoded {len(feats[1])} images ({inp.description}): {shapes} -> {out_path}")


@click.command("explain")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_load_options
@_input_options
@click.option("--limit", default=8, show_default=True, help="Explain at most this many images.")
@click.option("--top", default=10, show_default=True, help="Concepts shown per image.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write a PNG bar chart per image and explanations.json here.")
def explain_cmd(model_dir: Path, inputs: tuple[Path, ...], dataset: str | None, split: str, count: int,
                image_size: str, features_path: Path | None, on_error: str, limit: int, top: int,
                out_dir: Path | None) -> None:
    """Signed concept contributions per image (integrated gradients) as text, JSON and PNG bars.

    MODEL_DIR may also be an exported bundle (no torch): each image's strongest, weakest and
    present concepts by z-score, as text and explanations.json."""
    from ceir_sdk.atomic import atomic_write_json

    bundle = _bundle_exporter(model_dir)
    if bundle is not None:
        _explain_bundle(bundle[1], model_dir, inputs, dataset, features_path, on_error, limit, top, out_dir)
        return
    from ceir_sdk.viz import plot_explanation

    model = _load_model(model_dir)
    inp = _load_inputs(inputs, dataset, split, min(count, limit), image_size, features_path)
    total = None
    if inputs:  # list the files, and encode only those that will be explained
        from ceir_sdk.data import as_dataset

        refs = list(as_dataset(inp.images if isinstance(inp.images, list) else str(inp.images)).refs())
        total, inp.images = len(refs), [ref.path for ref in refs[:limit] if ref.path]
    feats = _features(model.backbone if inp.features is None else None, inp, on_error)[:limit]
    total = total if total is not None else len(feats)
    explanations = model.explain(features=feats)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for i, e in enumerate(explanations):
        ident = inp.ids[i] if i < len(inp.ids) else str(i)
        record = {"image": ident, **e.as_dict(top)}
        if out_dir is not None:
            image = inp.thumbnails[i] if inp.thumbnails is not None else None
            png = plot_explanation(e, out_dir / f"explain_{i:03d}.png", image=image, k=top, title=f"image {ident}")
            record["png"] = png.name
        records.append(record)
        shown = ", ".join(f"{c} {v:+.2f}" for c, v in e.labelled(top))
        click.echo(f"[{ident}] {shown}  (complete within {100 * e.completeness_error:.2f}%)")
    if total > limit:
        click.echo(f"explained {len(records)} of {total} images (of the first {limit}, --limit); --limit N "
                   "explains more")
    if out_dir is not None:
        atomic_write_json(out_dir / "explanations.json", records)
        click.echo(f"wrote {len(records)} explanations (PNG + explanations.json) to {out_dir}")


def _explain_bundle(exporter: Any, bundle: Path, inputs: tuple[Path, ...], dataset: str | None,
                    features_path: Path | None, on_error: str, limit: int, top: int, out_dir: Path | None) -> None:
    """`ceir explain BUNDLE IMAGES`: the bundle's runtime names the concepts (torch-free)."""
    from ceir_sdk.atomic import atomic_write_json
    from ceir_sdk.cli.logs import reported_here
    from ceir_sdk.data import as_dataset

    if dataset is not None or features_path is not None or not inputs:
        raise BadInputError(f"{bundle} is an exported bundle: give image files or folders to explain (--dataset and "
                            "--features need the torch model directory it was exported from)")
    runtime = exporter.open(bundle)
    if not callable(getattr(runtime, "explain", None)) or not callable(getattr(runtime, "encode_image_files", None)):
        raise BadInputError(f"the runtime that opens {bundle} cannot explain images; use the torch model directory")
    paths = [str(p) for p in inputs]
    refs = list(as_dataset(paths[0] if len(paths) == 1 else paths).refs())
    files = [str(ref.path) for ref in refs[:limit] if ref.path]
    max_pixels = click.get_current_context().meta.get("max_pixels")
    with reported_here("ceir_sdk.data"):  # skips are echoed below
        concepts, _, kept, skipped = runtime.encode_image_files(files, on_error=on_error, max_pixels=max_pixels)
    for _position, why in skipped:
        click.echo(f"skipped: {why}", err=True)
    records = []
    for row, e in zip(kept, runtime.explain(concepts=concepts, top_k=top), strict=True):
        ident = files[row]
        records.append({"image": ident, "top": [[c, v] for c, v in e.top], "absent": [[c, v] for c, v in e.absent],
                        "present": [[c, v] for c, v in e.present]})
        shown = ", ".join(f"{c} {v:+.2f}" for c, v in e.top)
        click.echo(f"[{ident}] {shown}  (z-scores; present: {', '.join(c for c, _ in e.present[:top]) or 'none'})")
    if len(refs) > limit:
        click.echo(f"explained {len(records)} of {len(refs)} images (of the first {limit}, --limit); --limit N "
                   "explains more")
    if out_dir is not None:
        atomic_write_json(out_dir / "explanations.json", records)
        click.echo(f"wrote {len(records)} explanations (explanations.json; PNG bars need the torch model) to {out_dir}")


@click.command("cluster")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_load_options
@_input_options
@click.option("-k", "--clusters", "k", required=True, type=int, help="Number of clusters.")
@click.option("--restarts", type=int, default=None,
              help="k-means runs from fresh k-means++ seeds, the lowest-inertia one kept [default: 30]")
@click.option("--seed", default=0, show_default=True)
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def cluster_cmd(model_dir: Path, inputs: tuple[Path, ...], dataset: str | None, split: str, count: int,
                image_size: str, features_path: Path | None, on_error: str, k: int, restarts: int | None,
                seed: int, out_dir: Path) -> None:
    """k-means on the latent, clusters named by dominant concepts; writes JSON and a PNG profile."""
    from ceir_sdk.atomic import atomic_write_json
    from ceir_sdk.model.cluster import DEFAULT_RESTARTS
    from ceir_sdk.viz import plot_clusters

    model = _load_model(model_dir)
    inp = _load_inputs(inputs, dataset, split, count, image_size, features_path)
    feats = _features(model.backbone if inp.features is None else None, inp, on_error)
    result = model.cluster(features=feats, k=k, restarts=DEFAULT_RESTARTS if restarts is None else restarts, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = result.as_dict()
    summary["assignments"] = [
        {"image": inp.ids[i] if i < len(inp.ids) else i, "cluster": int(c),
         **({"path": str(Path(path).resolve())} if (path := inp.paths[i] if i < len(inp.paths) else None) else {})}
        for i, c in enumerate(result.labels)
    ]
    if inp.labels is not None:
        from ceir_sdk.metrics import clustering_scores

        summary["scores_vs_labels"] = clustering_scores(inp.labels, result.labels)
    # The slow plot first, the JSON record last: an interrupted run leaves the previous pair.
    plot_clusters(result, out_dir / "clusters.png", images=inp.thumbnails)
    summary["plot"] = "clusters.png"
    atomic_write_json(out_dir / "clusters.json", summary)
    for c in range(result.k):
        click.echo(f"cluster {c:3d} ({result.sizes[c]:5d} images): {result.name(c)}")
    if inp.labels is not None:
        click.echo(f"vs. labels: {_scores(inp.labels, result.labels)}")
    click.echo(f"wrote clusters.json and clusters.png to {out_dir}")


def register(cli: click.Group) -> None:
    for command in (fit_cmd, encode_cmd, explain_cmd, cluster_cmd):
        cli.add_command(command)
