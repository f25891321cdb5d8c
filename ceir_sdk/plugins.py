"""Plugin discovery and the name registry.

Entry points in the group ``ceir`` are loaded one at a time so a plugin whose import
fails is reported (``ceir plugins``) instead of breaking the host. Environment:

- ``CEIR_LOAD_PLUGINS=a,b`` loads only the named entry points ("" loads none);
- ``CEIR_SKIP_PLUGINS=a,b`` loads all but the named entry points;
- ``CEIR_STRICT_PLUGINS=1`` turns any load failure or duplicate name into an error.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import os
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from ceir_sdk import hookspecs
from ceir_sdk.errors import BadInputError, CeirError, DuplicateNameError, PluginError, PluginLoadError, UnknownNameError

ENTRY_POINT_GROUP = "ceir"

#: kind of component -> the hook that registers it
KIND_HOOKS: dict[str, str] = {
    "concept_source": "register_concept_sources",
    "backbone": "register_backbones",
    "latent_model": "register_latent_models",
    "exporter": "register_exporters",
}

#: What a component of each kind must have for any use at all (docs/plugins.md lists the
#: rest, which only some features need, e.g. ONNX export).
REQUIRED_MEMBERS: dict[str, tuple[str, ...]] = {
    "concept_source": ("generate",),
    "backbone": ("name", "embed_dim", "encode_images", "encode_texts", "spec"),
    "latent_model": ("latent_dim", "fit", "encode", "state", "load_state"),
    "exporter": ("export",),
}


@dataclass(frozen=True)
class Registration:
    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    description: str = ""
    #: The keyword options the factory takes, where its plugin declared them (``register(...,
    #: options=[...])``); otherwise read from its signature when it has no ``**options``.
    options: tuple[str, ...] | None = None

    def accepted_options(self) -> set[str] | None:
        """The options this factory takes; None when unknown (it takes ``**options``, undeclared)."""
        return set(self.options) if self.options is not None else accepted_options(self.factory)


@dataclass
class PluginStatus:
    """What ``ceir plugins`` reports about one plugin."""

    name: str
    distribution: str | None
    version: str | None
    hooks: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": self.hooks,
            "ok": self.ok,
            "error": self.error,
        }


def strict_mode() -> bool:
    return os.environ.get("CEIR_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes"}


def _names_in(variable: str) -> set[str] | None:
    raw = os.environ.get(variable)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _allowed_names() -> set[str] | None:
    return _names_in("CEIR_LOAD_PLUGINS")


class PluginHost:
    """A pluggy manager plus the registry of named factories it collects."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.statuses: dict[str, PluginStatus] = {}
        self._registry: dict[str, dict[str, Registration]] | None = None
        self._conflicts: dict[tuple[str, str], list[str]] = {}
        #: Remarks on how loading went that belong to no plugin (``ceir plugins`` prints them).
        self.notes: list[str] = []

    # -- loading -------------------------------------------------------------
    def load_entry_points(
        self, *, only: Iterable[str] | None = None, strict: bool | None = None
    ) -> None:
        strict = strict_mode() if strict is None else strict
        allowed = set(only) if only is not None else _allowed_names()
        skipped = _names_in("CEIR_SKIP_PLUGINS") or set()
        installed = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
        for variable, names in (("CEIR_LOAD_PLUGINS", allowed if only is None else None),
                                ("CEIR_SKIP_PLUGINS", skipped)):
            unknown = sorted((names or set()) - installed)
            if unknown:
                verb = "is" if len(unknown) == 1 else "are"
                self.notes.append(f"{variable} names {', '.join(unknown)}, which {verb} not installed "
                                  f"(installed: {', '.join(sorted(installed))})")
        if skipped & installed:
            self.notes.append(f"left out by CEIR_SKIP_PLUGINS: {', '.join(sorted(skipped & installed))}")
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if (allowed is not None and ep.name not in allowed) or ep.name in skipped:
                continue
            if ep.name in self.statuses:
                continue
            dist = getattr(ep, "dist", None)
            status = PluginStatus(
                name=ep.name,
                distribution=dist.name if dist is not None else None,
                version=dist.version if dist is not None else None,
            )
            self.statuses[ep.name] = status
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:
                status.error = f"{type(exc).__name__}: {exc}"
                if strict:
                    raise PluginLoadError(
                        f"plugin {ep.name!r} ({ep.value}) failed to load: {status.error}\n"
                        "Unset CEIR_STRICT_PLUGINS to skip it, or uninstall/fix the plugin.\n"
                        + "".join(traceback.format_exception(exc)[-3:])
                    ) from exc
                continue
            status.hooks = self._hooks_of(ep.name)
            self._check_hook_names(ep.name)
        self._registry = None

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register an in-process plugin (a module or an object with hookimpls)."""
        registered = self.pm.register(plugin, name=name)
        if registered is None:
            raise PluginLoadError(f"plugin {name!r} is blocked or already registered")
        dist = None
        self.statuses[registered] = PluginStatus(name=registered, distribution=dist, version=None)
        self.statuses[registered].hooks = self._hooks_of(registered)
        self._check_hook_names(registered)
        self._registry = None
        return registered

    def _check_hook_names(self, plugin_name: str) -> None:
        """A misspelt hook would otherwise be ignored without a word (pluggy accepts it)."""
        plugin = self.pm.get_plugin(plugin_name)
        known = sorted(name for name, caller in vars(self.pm.hook).items() if getattr(caller, "spec", None))
        for caller in self.pm.get_hookcallers(plugin) or []:
            if caller.spec is not None:
                continue
            impls = [impl for impl in caller.get_hookimpls() if impl.plugin_name == plugin_name]
            if all(impl.optionalhook for impl in impls):
                continue
            close = difflib.get_close_matches(caller.name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self._record_failure(plugin_name, f"implements {caller.name!r}, which is not a ceir hook{hint}; "
                                              "docs/plugins.md lists the hooks")

    def _hooks_of(self, plugin_name: str) -> list[str]:
        plugin = self.pm.get_plugin(plugin_name)
        if plugin is None:
            return []
        return sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])

    # -- the registry --------------------------------------------------------
    def _collect(self) -> dict[str, dict[str, Registration]]:
        if self._registry is not None:
            return self._registry
        registry: dict[str, dict[str, Registration]] = {kind: {} for kind in KIND_HOOKS}
        self._conflicts = {}
        for kind, hook_name in KIND_HOOKS.items():
            for plugin_name, caller in self._callers_one_by_one(hook_name):
                try:
                    caller(register=self._make_register(registry, kind, plugin_name))
                except DuplicateNameError:
                    raise
                except Exception as exc:
                    self._record_failure(plugin_name, f"{hook_name} raised {type(exc).__name__}: {exc}")
        self._registry = registry
        return registry

    def _make_register(
        self, registry: dict[str, dict[str, Registration]], kind: str, plugin_name: str
    ) -> Callable[..., None]:
        def register(name: str, factory: Callable[..., Any], description: str = "",
                     options: Iterable[str] | None = None) -> None:
            if not name or ":" in name:
                raise ValueError(f"plugin {plugin_name!r}: invalid {kind} name {name!r} (no ':' allowed)")
            existing = registry[kind].get(name)
            if existing is not None:
                self._conflicts.setdefault((kind, name), [existing.plugin]).append(plugin_name)
                message = (
                    f"{kind} name {name!r} is registered by both {existing.plugin!r} and "
                    f"{plugin_name!r}; keep one (CEIR_LOAD_PLUGINS=... selects plugins)"
                )
                if strict_mode():
                    raise DuplicateNameError(message)
                # Either plugin may be the one in the wrong: both are marked, neither is used.
                for culprit in (existing.plugin, plugin_name):
                    self._record_failure(culprit, message)
                return
            declared = tuple(options) if options is not None else None
            registry[kind][name] = Registration(kind, name, factory, plugin_name, description, declared)

        return register

    def _record_failure(self, plugin_name: str, message: str) -> None:
        status = self.statuses.setdefault(
            plugin_name, PluginStatus(name=plugin_name, distribution=None, version=None)
        )
        status.error = message if status.error is None else f"{status.error}; {message}"
        if strict_mode():
            raise PluginLoadError(f"plugin {plugin_name!r}: {message}")

    def add_commands(self, cli: Any) -> None:
        """Let every plugin add its click commands to ``cli``, through pluggy's hook caller, one
        plugin at a time: one that raises is marked failed (``ceir plugins`` says why) and the
        others' commands are still added."""
        for plugin_name, caller in self._callers_one_by_one("register_commands"):
            try:
                caller(cli=cli)
            except Exception as exc:
                self._record_failure(plugin_name, f"register_commands raised {type(exc).__name__}: {exc}")

    def _callers_one_by_one(self, hook_name: str) -> Iterator[tuple[str, Any]]:
        """(plugin name, a hook caller that calls only that plugin's implementation)."""
        impls = getattr(self.pm.hook, hook_name).get_hookimpls()
        everyone = [impl.plugin for impl in impls]
        for impl in impls:
            others = [plugin for plugin in everyone if plugin is not impl.plugin]
            yield impl.plugin_name, self.pm.subset_hook_caller(hook_name, remove_plugins=others)

    def registrations(self, kind: str) -> dict[str, Registration]:
        if kind not in KIND_HOOKS:
            raise UnknownNameError(f"unknown kind {kind!r}; kinds: {', '.join(KIND_HOOKS)}")
        return dict(self._collect()[kind])

    def resolve(self, kind: str, spec: str, **options: Any) -> Any:
        """Build a component from a name such as ``open-clip:ViT-B-32/laion2b_s34b_b79k``.

        The part before the first ':' picks the registered factory; the rest (or None)
        is passed to it as ``spec``.
        """
        name, _, rest = spec.partition(":")
        regs = self.registrations(kind)
        if (kind, name) in self._conflicts:
            raise DuplicateNameError(
                f"{kind} {name!r} is registered by several plugins: "
                f"{', '.join(self._conflicts[(kind, name)])}; leave one out with CEIR_SKIP_PLUGINS=NAME "
                "(or list the ones to load in CEIR_LOAD_PLUGINS)"
            )
        reg = regs.get(name)
        if reg is None:
            available = ", ".join(sorted(regs)) or "none (is a plugin installed? see `ceir plugins`)"
            failed = sorted(s.name for s in self.statuses.values() if not s.ok)
            note = f"; plugins that failed to load: {', '.join(failed)} (see `ceir plugins`)" if failed else ""
            raise UnknownNameError(
                f"no {kind.replace('_', ' ')} named {name!r}; available: {available}{note}"
            )
        return _build(reg, rest or None, options)


def accepted_options(factory: Callable[..., Any]) -> set[str] | None:
    """The keyword options a factory takes; None when it takes any (``**options``)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                                      inspect.Parameter.POSITIONAL_OR_KEYWORD)} - {"spec"}


def _has_member(component: Any, name: str) -> bool:
    # Statically: a property such as latent_dim may rightly raise until the model is fitted.
    try:
        inspect.getattr_static(component, name)
    except AttributeError:
        return False
    return True


def _build(reg: Registration, spec: str | None, options: dict[str, Any]) -> Any:
    """Call a plugin's factory; what goes wrong is reported with the plugin's name."""
    what = f"{reg.kind.replace('_', ' ')} {reg.name!r} (plugin {reg.plugin!r})"
    accepted = reg.accepted_options()
    if accepted is not None and set(options) - accepted:
        raise BadInputError(
            f"{what} does not take the option(s) {', '.join(sorted(set(options) - accepted))}; "
            f"it takes: {', '.join(sorted(accepted)) or 'none'}")
    try:
        component = reg.factory(spec, **options)
    except CeirError:
        raise
    except Exception as exc:
        raise PluginError(f"{what} failed to build from {spec!r}: {type(exc).__name__}: {exc}") from exc
    missing = [m for m in REQUIRED_MEMBERS.get(reg.kind, ()) if not _has_member(component, m)]
    if missing:
        raise PluginError(
            f"{what} returned a {type(component).__name__}, which lacks {', '.join(missing)}: it does not "
            f"implement the {reg.kind.replace('_', ' ')} contract (docs/plugins.md); report this to the plugin's "
            "authors, or leave the plugin out with CEIR_SKIP_PLUGINS")
    return component


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide host, with installed entry points loaded on first use."""
    global _HOST
    if _HOST is None:
        host = PluginHost()
        host.load_entry_points()
        _HOST = host
    return _HOST


def reset_host(host: PluginHost | None = None) -> None:
    """Replace the process-wide host (tests use this to avoid installed plugins)."""
    global _HOST
    _HOST = host


def resolve(kind: str, spec: str, **options: Any) -> Any:
    return get_host().resolve(kind, spec, **options)


def get_backbone(spec: str, **options: Any) -> Any:
    return resolve("backbone", spec, **options)


def get_concept_source(spec: str, **options: Any) -> Any:
    return resolve("concept_source", spec, **options)


def get_latent_model(spec: str, **options: Any) -> Any:
    return resolve("latent_model", spec, **options)


def get_exporter(spec: str, **options: Any) -> Any:
    return resolve("exporter", spec, **options)


def exporter_for(path: str | Path) -> tuple[str, Any] | None:
    """(name, exporter) of the installed exporter that recognises ``path`` as its own bundle.

    Exporters that cannot read back what they wrote (no ``recognises``) are passed over; one
    that fails to build or to answer is reported with its plugin's name."""
    host = get_host()
    for name in sorted(host.registrations("exporter")):
        exporter = host.resolve("exporter", name)
        recognises = getattr(exporter, "recognises", None)
        if recognises is None:
            continue
        try:
            if recognises(path):
                return name, exporter
        except CeirError:
            raise
        except Exception as exc:
            raise PluginError(f"exporter {name!r} failed to tell whether {path} is its bundle: "
                              f"{type(exc).__name__}: {exc}") from exc
    return None
