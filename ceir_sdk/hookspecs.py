"""The hooks a ceir plugin can implement.

Collector style: every hook receives a ``register`` callable (or the CLI group) and
registers named factories with it. Implementations may accept any subset of the
arguments, so adding an argument here never breaks an older plugin.

``options`` (optional) names the keyword options a factory takes. Declare it when the factory
takes ``**options``: a call with any other option is then refused with the list, and the CLI
passes only those options (``ceir concepts generate`` passes its LLM settings to sources that
declare them).
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT_NAME = "ceir"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_concept_sources(register: Any) -> None:
    """Register concept sources: ``register(name, factory, description=..., options=[...])``.

    ``factory(spec, **options)`` returns a :class:`ceir_sdk.contracts.ConceptSource`.
    """


@hookspec
def register_backbones(register: Any) -> None:
    """Register vision-language backbones: ``register(name, factory, description=..., options=[...])``.

    ``factory(spec, **options)`` returns a :class:`ceir_sdk.contracts.Backbone`.
    """


@hookspec
def register_latent_models(register: Any) -> None:
    """Register latent models: ``register(name, factory, description=..., options=[...])``.

    ``factory(spec, **options)`` returns a :class:`ceir_sdk.contracts.LatentModel`.
    """


@hookspec
def register_exporters(register: Any) -> None:
    """Register deployment exporters: ``register(name, factory, description=..., options=[...])``.

    ``factory(spec, **options)`` returns a :class:`ceir_sdk.contracts.Exporter`.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add click commands or groups to the ``ceir`` command line.

    ``cli`` is the top-level :class:`click.Group`; sub-groups such as ``export`` and
    ``scale`` can be reached with ``cli.commands["export"]``.
    """
