"""``ceir demo``: the whole product on the built-in offline default, end to end.

world images -> concepts (static oracle lists, or an LLM plugin) -> CEIR fit -> clusters named
by concepts -> explanations -> ONNX bundle -> torch-free runtime -> FAISS ConceptIndex ->
text, concept-expression and edited-example queries -> HTML report + JSON.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ceir_sdk.model.world_concepts import WORLD_CONCEPT_TEMPLATES

SIZES: dict[str, tuple[int, int]] = {"full": (6000, 2000), "small": (1200, 400)}


@dataclass
class DemoConfig:
    out_dir: Path
    size: str = "full"
    domain: str = "world10"
    backbone: str = "open-clip:ceir-world"
    concept_source: str | None = None  # default: static:<domain>, the world's oracle lists
    latent: str = "vae"
    seed: int = 0
    kmeans_seeds: int = 3
    progress: bool = True
    latent_options: dict[str, Any] = field(default_factory=dict)
    # How concepts are phrased for the world CLIP: see world_concepts.WORLD_CONCEPT_TEMPLATES.
    concept_template: str | tuple[str, ...] = WORLD_CONCEPT_TEMPLATES

    @property
    def n_train(self) -> int:
        return SIZES[self.size][0]

    @property
    def n_test(self) -> int:
        return SIZES[self.size][1]


@dataclass
class Split:
    images: np.ndarray
    labels: np.ndarray
    concepts: list[frozenset[str]]
    nuisances: list[dict[str, str]] | None = None  # how each picture was made (world version 2)


def _draw(world: Any, split: str, n: int) -> Split:
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    concepts: list[frozenset[str]] = []
    nuisances: list[dict[str, str]] = []
    for batch in world.batches(n, split=split, batch_size=512):
        images.append(np.asarray(batch.images))
        labels.append(np.asarray(batch.labels))
        concepts.extend(frozenset(c) for c in batch.concepts)
        nuisances.extend(batch.nuisances)
    return Split(np.concatenate(images), np.concatenate(labels).astype(np.int64), concepts, nuisances)


class Steps:
    """A progress bar over the demo's stages, with timings kept for the report."""

    def __init__(self, names: list[str], progress: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=len(names), desc="ceir demo", unit="step", disable=not progress, position=0)
        self.timings: dict[str, float] = {}
        self._name: str | None = None
        self._t0 = 0.0

    def start(self, name: str) -> None:
        self._finish()
        self._name, self._t0 = name, time.perf_counter()
        self.bar.set_postfix_str(name)

    def _finish(self) -> None:
        if self._name is not None:
            self.timings[self._name] = round(time.perf_counter() - self._t0, 2)
            self.bar.update(1)
            self._name = None

    def close(self) -> None:
        self._finish()
        self.bar.close()


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Run the main job; writes model/, bundle/, index/, report.html and results.json."""
    from ceir_sdk.concepts.from_source import concepts_from_source
    from ceir_sdk.demo.evaluate import evaluate
    from ceir_sdk.demo.queries import run_queries
    from ceir_sdk.demo.render import write_report
    from ceir_sdk.index import ConceptIndex
    from ceir_sdk.index.encoder import RuntimeEncoder
    from ceir_sdk.model import CEIRModel
    from ceir_sdk.plugins import get_backbone, get_exporter
    from ceir_sdk.report.html import atomic_write_text
    from ceir_sdk.worlds import World
    from ceir_sdk.worlds.descriptions import description_parts, expand_truth

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps = Steps(
        ["draw world", "encode images", "concepts", "fit CEIR", "evaluate", "export ONNX", "runtime embed",
         "index", "queries", "report"],
        config.progress,
    )
    t_start = time.perf_counter()

    steps.start("draw world")
    world = World(config.domain, image_size=32, seed=config.seed)
    class_names = list(world.class_names)
    train = _draw(world, "train", config.n_train)
    test = _draw(world, "test", config.n_test)
    # Descriptive concepts ("red dotted") are true where all their parts are.
    parts = description_parts(world)
    test.concepts = [expand_truth(truth, parts) for truth in test.concepts]

    steps.start("encode images")
    backbone = get_backbone(config.backbone)
    train_features = backbone.encode_images(train.images, progress=config.progress)
    test_features = backbone.encode_images(test.images, progress=config.progress)

    steps.start("concepts")
    source_name = config.concept_source or f"static:{config.domain}"
    # The same generation and filtering as `ceir fit --concepts SOURCE` (concepts/from_source.py).
    sourced = concepts_from_source(source_name, class_names, domain=config.domain, backbone_name=config.backbone,
                                   backbone=backbone, progress=config.progress)
    concept_set, filter_steps, label_information = sourced.concept_set, sourced.steps, sourced.label_information

    steps.start("fit CEIR")
    model = CEIRModel(backbone=backbone, latent=config.latent, latent_options=config.latent_options,
                      seed=config.seed, concept_template=config.concept_template)
    model.fit_features(train_features, concept_set, progress=config.progress,
                       label_information=label_information)
    model_dir = model.save(out / "model")

    steps.start("evaluate")
    evaluation = evaluate(model, test_features, test.labels, class_names, seeds=config.kmeans_seeds,
                          true_concepts=test.concepts, progress=config.progress)

    steps.start("export ONNX")
    exporter = get_exporter("onnx")
    bundle_dir = exporter.export(model_dir, out / "bundle", overwrite=True, int8=True,
                                 check_images=test.images[:32], progress=config.progress)

    steps.start("runtime embed")
    runtime = exporter.open(bundle_dir)
    acts, latents = runtime.embed(test.images, output="both", progress=config.progress)
    torch_acts, torch_latents = model.encode_features(test_features, output="both")
    parity = {
        "max_abs_diff_latent": float(np.abs(latents - torch_latents).max()),
        "max_abs_diff_concepts": float(np.abs(acts - torch_acts).max()),
    }

    steps.start("index")
    metadata = [
        {"class": class_names[int(label)], "split": "test", "true_concepts": sorted(truth)}
        for label, truth in zip(test.labels, test.concepts)
    ]
    index = ConceptIndex.build(latents, acts, model.concepts, metadata=metadata,
                               encoder=RuntimeEncoder(runtime), progress=config.progress)
    index.save(out / "index")

    steps.start("queries")
    queries = run_queries(index, model.concepts, class_names, test.labels, test.concepts, world.oracle.families())

    steps.start("report")
    results: dict[str, Any] = {
        "domain": config.domain,
        "size": config.size,
        "n_train": config.n_train,
        "n_test": config.n_test,
        "backbone": backbone.spec(),
        "concepts": {
            "source": source_name,
            "raw": sourced.raw_count,
            "after_processing": len(concept_set),
            "kept_by_model": len(model.concepts),
            "template": config.concept_template,
            "similarity": sourced.similarity,
            "filter_steps": [step.to_dict() for step in filter_steps],
        },
        "label_information": label_information,
        "evaluation": evaluation.as_dict(),
        "onnx": {"bundle": str(bundle_dir), "providers": list(runtime.providers), **parity},
        "index": index.info(),
        "queries": queries,
        "timings_s": steps.timings,
    }
    results["total_seconds"] = round(time.perf_counter() - t_start, 1)
    steps.close()
    results["timings_s"] = steps.timings
    from ceir_sdk.worlds.nuisance import WORLD_VERSION

    results["world_version"] = WORLD_VERSION
    assets = {
        "test_images": test.images,
        "test_nuisances": test.nuisances,
        "cluster_labels": evaluation.cluster_labels,
        "concepts_z": torch_acts,
        "concept_names": model.concepts,
    }
    write_report(results, assets, out / "report.html")
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, default=_jsonable))
    return results


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
