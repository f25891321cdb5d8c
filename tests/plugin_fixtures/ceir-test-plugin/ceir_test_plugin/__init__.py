"""A tiny plugin written as a third party would: one of each hook."""

from __future__ import annotations

from typing import Any

import click

from ceir_sdk import hookimpl


class EchoConceptSource:
    name = "test-echo"

    def __init__(self, spec: str | None = None, suffix: str = "thing") -> None:
        self.spec = spec
        self.suffix = suffix

    def generate(self, class_names: Any, *, domain: str | None = None, progress: bool = True) -> Any:
        from ceir_sdk.concepts import ConceptSet

        return ConceptSet.from_phrases([f"{name} {self.suffix}" for name in class_names], source="test-echo",
                                       class_names=list(class_names))


class _Recorded:
    """Keeps the spec and options it was built with, so tests can see what resolution passed."""

    def __init__(self, spec: str | None, **options: Any) -> None:
        self.spec_text = spec
        self.options = options


class RecordingBackbone(_Recorded):
    name = "test-backbone"
    embed_dim = 4

    def encode_images(self, images: Any, *, batch_size: int = 64, progress: bool = True) -> Any:
        import numpy as np

        return np.zeros((len(images), self.embed_dim), np.float32)

    def encode_texts(self, texts: Any) -> Any:
        import numpy as np

        return np.ones((len(texts), self.embed_dim), np.float32)

    def spec(self) -> dict[str, Any]:
        return {"name": f"test-backbone:{self.spec_text}" if self.spec_text else "test-backbone"}


class RecordingLatent(_Recorded):
    latent_dim = 2

    def fit(self, x: Any, **kwargs: Any) -> Any:
        return self

    def encode(self, x: Any) -> Any:
        return x[:, : self.latent_dim]

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {}

    def load_state(self, config: dict[str, Any], tensors: dict[str, Any]) -> None:
        return None


class RecordingExporter(_Recorded):
    def export(self, model_dir: Any, out_dir: Any, **options: Any) -> Any:
        return out_dir


@hookimpl
def register_concept_sources(register: Any) -> None:
    register("test-echo", EchoConceptSource, description="echoes class names (tests only)")


@hookimpl
def register_backbones(register: Any) -> None:
    register("test-backbone", RecordingBackbone)


@hookimpl
def register_latent_models(register: Any) -> None:
    register("test-latent", RecordingLatent)


@hookimpl
def register_exporters(register: Any) -> None:
    register("test-exporter", RecordingExporter)


@hookimpl
def register_commands(cli: Any) -> None:
    @cli.command(name="test-hello")
    @click.argument("who", default="world")
    @click.option("--fail", is_flag=True, help="Raise, as a buggy plugin would.")
    def hello(who: str, fail: bool) -> None:
        """Say hello (registered by ceir-test-plugin)."""
        if fail:
            raise RuntimeError("the plugin's own bug")
        click.echo(f"hello {who} from test-plugin")
