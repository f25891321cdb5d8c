"""Errors the SDK raises on purpose: each names the problem and the way out."""

from __future__ import annotations


class CeirError(Exception):
    """Base class of every error ceir-sdk raises deliberately."""


class PluginLoadError(CeirError):
    """A plugin's entry point could not be imported or registered."""


class PluginError(CeirError):
    """A plugin's component failed to build or does not implement its contract."""


class UnknownNameError(CeirError, KeyError):
    """A backbone / concept source / latent model / exporter name is not registered."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(CeirError):
    """Two plugins registered the same name for the same kind."""


class BadInputError(CeirError, ValueError):
    """Input data (images, files, arguments) cannot be used as given."""


class ConflictError(CeirError):
    """A saved index changed on disk (another writer) since this copy was loaded; nothing was written."""


class IncompatibleFileError(CeirError):
    """A saved model, bundle or index was written by an incompatible version or was altered."""
