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
        return [f"{name} {self.suffix}" for name in class_names]


@hookimpl
def register_concept_sources(register: Any) -> None:
    register("test-echo", EchoConceptSource, description="echoes class names (tests only)")


@hookimpl
def register_backbones(register: Any) -> None:
    register("test-backbone", lambda spec, **options: ("test-backbone", spec, options))


@hookimpl
def register_latent_models(register: Any) -> None:
    register("test-latent", lambda spec, **options: ("test-latent", spec, options))


@hookimpl
def register_exporters(register: Any) -> None:
    register("test-exporter", lambda spec, **options: ("test-exporter", spec, options))


@hookimpl
def register_commands(cli: Any) -> None:
    @cli.command(name="test-hello")
    @click.argument("who", default="world")
    def hello(who: str) -> None:
        """Say hello (registered by ceir-test-plugin)."""
        click.echo(f"hello {who} from test-plugin")
