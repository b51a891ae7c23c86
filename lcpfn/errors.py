"""User-facing errors. Every error about bad input subclasses ``ValueError`` (``LCPFNError``) and names the bad
value; a missing optional dependency is an ``ImportError`` (``MissingDependencyError``) that says what to install."""

from __future__ import annotations


class LCPFNError(ValueError):
    """Base class of every error lcpfn raises for bad user input."""


class InputError(LCPFNError):
    """A curve, option or argument that cannot be forecast as given."""


class CheckpointError(LCPFNError):
    """A checkpoint directory that is missing, incomplete or corrupt."""


class UnknownModelError(LCPFNError):
    """A model name that is neither a shipped model nor an existing directory."""


class MissingDependencyError(ImportError):
    """An optional dependency (an extra) is not installed."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the optional package {package!r}, which is not installed. "
            f"Install it with: pip install 'lcpfn[{extra}]'"
        )
        self.package = package
        self.extra = extra


def require(module: str, *, extra: str, feature: str):
    """Import an optional module lazily, or raise :class:`MissingDependencyError`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(module.split(".")[0], extra, feature) from exc
