"""Plugin discovery and the name registry.

Entry points in the group ``ceir`` are loaded one at a time so a plugin whose import
fails is reported (``ceir plugins``) instead of breaking the host. Environment:

- ``CEIR_LOAD_PLUGINS=a,b`` loads only the named entry points ("" loads none);
- ``CEIR_SKIP_PLUGINS=a,b`` loads all but the named entry points;
- ``CEIR_STRICT_PLUGINS=1`` turns any failure (load, hook, duplicate name) into an error that
  lists every failure at once; ``ceir plugins`` still prints its report first.

An unexpected exception is blamed (:meth:`PluginHost.blame`) on the entry point whose code raised
it, found from the module of each frame of the traceback, never from folders: one distribution may
hold several entry points in one package, and a one-module plugin shares site-packages with numpy.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pluggy

from ceir_sdk import hookspecs
from ceir_sdk.errors import BadInputError, CeirError, DuplicateNameError, PluginError, PluginLoadError, UnknownNameError

ENTRY_POINT_GROUP = "ceir"

#: Distributions of this repository; a traceback through them is ours to fix, not a plugin's.
FIRST_PARTY = {"ceir-sdk", "ceir-open-clip", "ceir-vae", "ceir-openai", "ceir-anthropic", "ceir-static",
               "ceir-ray", "ceir-onnx", "ceir-serve"}

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
    #: The module the entry point names (``ceir_x.plugin``); its code, and its submodules', is the
    #: plugin's own code when an error is blamed.
    module: str | None = None
    #: Where a load failure was raised (file:line), for the author to look at.
    where: str | None = None

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
            "where": self.where,
            "module": self.module,
        }

    def label(self) -> str:
        """``'name' (distribution version)``, as messages name a plugin."""
        if self.distribution is None:
            return f"{self.name!r} (not installed)"
        return f"{self.name!r} ({self.distribution} {self.version})" if self.version else \
            f"{self.name!r} ({self.distribution})"


@dataclass(frozen=True)
class Blame:
    """The plugin an exception is blamed on, and the frame of its code that was deepest."""

    plugin: str
    label: str  # 'name' (distribution version)
    distribution: str | None
    module: str  # the module of the frame
    filename: str
    lineno: int
    #: Set when the frame is in a distribution's code shared by several entry points and no frame
    #: of one of them called it: the entry points it may belong to.
    candidates: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"{Path(self.filename).name}:{self.lineno}"
        if self.candidates:
            return (f"distribution {self.distribution} (entry points {', '.join(self.candidates)}) at {where}")
        return f"{self.label} at {where}"


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
                module=ep.module,
            )
            self.statuses[ep.name] = status
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:
                # Recorded, not raised, even in strict mode: the other plugins still load, so that
                # strict mode reports every failure at once instead of one per run.
                status.error = f"{type(exc).__name__}: {exc}"
                status.where = _raised_at(exc)
                continue
            status.hooks = self._hooks_of(ep.name)
            self._check_hook_names(ep.name)
        self._registry = None
        if strict:
            self.raise_failures()

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register an in-process plugin (a module or an object with hookimpls)."""
        registered = self.pm.register(plugin, name=name)
        if registered is None:
            raise PluginLoadError(f"plugin {name!r} is blocked or already registered")
        module = plugin.__name__ if inspect.ismodule(plugin) else getattr(inspect.getmodule(plugin), "__name__", None)
        self.statuses[registered] = PluginStatus(name=registered, distribution=None, version=None, module=module)
        self.statuses[registered].hooks = self._hooks_of(registered)
        self._check_hook_names(registered)
        self._registry = None
        if strict_mode():
            self.raise_failures()
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

    # -- failures ------------------------------------------------------------
    def failures(self) -> list[PluginStatus]:
        """Every plugin that failed so far: to load, in a hook, or by a name clash (the hooks that
        register components are called first, so their failures are in the list)."""
        self._collect()
        return sorted((s for s in self.statuses.values() if not s.ok), key=lambda s: s.name)

    def strict_report(self) -> str | None:
        """The strict-mode error listing every failure, or None when nothing failed."""
        failed = self.failures()
        if not failed:
            return None
        lines = [f"CEIR_STRICT_PLUGINS is set and {len(failed)} plugin{'s' if len(failed) > 1 else ''} failed:"]
        for status in failed:
            where = f" [at {status.where}]" if status.where else ""
            lines.append(f"  - {status.label()}: {status.error}{where}")
        lines.append(f"Fix or uninstall {'them' if len(failed) > 1 else 'it'}, leave "
                     f"{'them' if len(failed) > 1 else 'it'} out with CEIR_SKIP_PLUGINS="
                     f"{','.join(s.name for s in failed)}, or unset CEIR_STRICT_PLUGINS "
                     "(`ceir plugins` lists every plugin)")
        return "\n".join(lines)

    def raise_failures(self) -> None:
        """Raise one PluginLoadError naming every failed plugin (strict mode), if any failed."""
        report = self.strict_report()
        if report is not None:
            raise PluginLoadError(report)

    # -- blame ---------------------------------------------------------------
    def blame(self, exc: BaseException) -> Blame | None:
        """The third-party plugin whose code ``exc`` was raised in or passed through, or None.

        Each traceback frame is attributed by its code's module (the frame's globals'
        ``__name__``) to the entry point that module belongs to: the entry point's own module or
        one of its submodules, the longest such module winning. The innermost frame so attributed
        wins. Frames of other libraries (numpy, torch, ...) are never a plugin's, wherever those
        are installed: an error raised inside numpy is blamed on the plugin frame that called it,
        and on no plugin when no plugin frame is on the stack.

        A frame in a package the distribution's entry points share (``pkg._helpers`` for entry
        points ``pkg.a`` and ``pkg.b``) is the distribution's: the entry point is then the next
        frame out that belongs to one of them, or, when none does, the distribution is named with
        its entry points. The exception's causes (``raise ... from``) are searched after it.
        """
        entry_modules, shared = self._code_owners()
        if not entry_modules:
            return None
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            found = self._blame_frames(_frames(current.__traceback__), entry_modules, shared)
            if found is not None:
                return found
            current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
        return None

    def _code_owners(self) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
        """(entry-point module -> plugin, shared package -> plugins) for third-party plugins."""
        entry_modules: dict[str, str] = {}
        packages: dict[str, list[str]] = {}
        for status in self.statuses.values():
            if status.module is None or status.distribution in FIRST_PARTY:
                continue
            if status.distribution is None and status.module.partition(".")[0] == "ceir_sdk":
                continue  # the core registering one of its own objects in process
            entry_modules.setdefault(status.module, status.name)
            parent = status.module.rpartition(".")[0]
            # A namespace package (no __file__) is shared with other distributions: not this one's.
            if parent and getattr(sys.modules.get(parent), "__file__", None):
                packages.setdefault(parent, []).append(status.name)
        return entry_modules, {package: tuple(names) for package, names in packages.items()}

    def _blame_frames(self, frames: list[tuple[Any, int]], entry_modules: dict[str, str],
                      shared: dict[str, tuple[str, ...]]) -> Blame | None:
        pending: tuple[tuple[Any, int], tuple[str, ...]] | None = None  # a shared-code frame
        for frame, lineno in reversed(frames):  # innermost first
            module = frame.f_globals.get("__name__")
            if not isinstance(module, str):
                continue
            plugin = _owner(module, entry_modules)
            if plugin is not None and (pending is None or plugin in pending[1]):
                return self._blame_at(plugin, frame, lineno, module)
            if pending is None:
                package = _owner(module, {name: name for name in shared})
                if package is not None:
                    pending = ((frame, lineno), shared[package])
        if pending is None:
            return None
        (frame, lineno), candidates = pending
        blamed = self._blame_at(candidates[0], frame, lineno, frame.f_globals["__name__"])
        if len(candidates) == 1:
            return blamed
        return dataclasses.replace(blamed, candidates=candidates)

    def _blame_at(self, plugin: str, frame: Any, lineno: int, module: str) -> Blame:
        status = self.statuses[plugin]
        return Blame(plugin=plugin, label=status.label(), distribution=status.distribution, module=module,
                     filename=frame.f_code.co_filename, lineno=lineno)

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

    def registrations(self, kind: str, *, check: bool = True) -> dict[str, Registration]:
        """The components of ``kind`` by name. In strict mode a PluginLoadError listing every failed
        plugin comes instead, unless ``check`` is False (``ceir plugins`` reports them itself)."""
        if kind not in KIND_HOOKS:
            raise UnknownNameError(f"unknown kind {kind!r}; kinds: {', '.join(KIND_HOOKS)}")
        registry = self._collect()
        if check and strict_mode():
            self.raise_failures()
        return dict(registry[kind])

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


def _owner(module: str, owners: dict[str, str]) -> str | None:
    """The owner of ``module``: that of the longest key that is the module or a package of it."""
    while module:
        if module in owners:
            return owners[module]
        module = module.rpartition(".")[0]
    return None


def _frames(tb: TracebackType | None) -> list[tuple[Any, int]]:
    """(frame, line) of each traceback entry, outermost first."""
    out = []
    while tb is not None:
        out.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return out


def _raised_at(exc: BaseException) -> str | None:
    """file:line of the innermost frame outside the import machinery."""
    for entry in reversed(traceback.extract_tb(exc.__traceback__)):
        if not entry.filename.startswith("<"):
            return f"{entry.filename}:{entry.lineno}"
    return None


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


def get_host(*, check: bool = True) -> PluginHost:
    """The process-wide host, with installed entry points loaded on first use.

    In strict mode (``CEIR_STRICT_PLUGINS=1``) it raises a PluginLoadError listing every failed
    plugin, unless ``check`` is False: ``ceir plugins`` reports the failures itself."""
    global _HOST
    if _HOST is None:
        host = PluginHost()
        host.load_entry_points(strict=False)
        _HOST = host
    if check and strict_mode():
        _HOST.raise_failures()
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
