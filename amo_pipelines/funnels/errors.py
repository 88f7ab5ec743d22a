"""The exceptions of :mod:`amo_pipelines.funnels`; all are :class:`~amo_pipelines.AmoError`."""

from __future__ import annotations

from ..errors import AmoError


class SpecError(AmoError, ValueError):
    """A funnels file is not valid. ``str()`` reads ``file:line: field: problem``.

    ``path`` is the file (or ``"<string>"``), ``line`` its 1-based line (``None`` where the
    format gives none, e.g. JSON), ``field`` the dotted place (``pipelines[0].statuses[2].name``).
    """

    def __init__(self, message: str, *, path: str, line: int | None, field: str | None) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.problem = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class PlanError(AmoError, ValueError):
    """The file can not be applied to this account (ambiguous names, account limits);
    nothing was sent."""


class StalePlanError(AmoError):
    """A saved plan was made against an account that has changed since; nothing was sent."""


class ApplyLockedError(AmoError):
    """Another apply to the same account holds its lock; nothing was sent."""


class ExtraMissingError(AmoError, ImportError):
    """An optional dependency of the ``cli`` extra (PyYAML, rich) is not installed."""

    def __init__(self, module: str, purpose: str) -> None:
        self.module = module
        super().__init__(
            f"{purpose} needs {module}, which is not installed: pip install 'amo-pipelines[cli]'"
        )
