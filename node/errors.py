"""Error classes shared by the model, the datastore backends and the tools.

Messages follow libcalico-go's wording, because operators and scripts match on them
("resource does not exist: ...", "update conflict: ...", "error with field ...").
"""
from __future__ import annotations


class CalicoError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(CalicoError):
    """Bad or missing configuration (environment, calicoctl.cfg)."""


class ValidationError(CalicoError):
    """One or more fields of a resource are invalid.

    ``fields`` holds (field path, value, reason) triples; the message has libcalico-go's
    shape: ``error with field <path> = '<value>' (<reason>)``, without `` = '<value>'``
    when the value is ``NO_VALUE`` (Go's nil interface) and without `` (<reason>)`` when
    the reason is empty.
    """

    def __init__(self, fields: list[tuple[str, object, str]]):
        self.fields = list(fields)
        super().__init__(self._message())

    def _message(self) -> str:
        if not self.fields:
            return "unknown validation error"
        parts = [_field(path, value, reason) for path, value, reason in self.fields]
        if len(parts) == 1:
            return f"error with field {parts[0]}"
        return "error with the following fields:\n" + "".join(f"-  {p}\n" for p in parts)


class _NoValue:
    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE = _NoValue()  # an errored field that names no value (libcalico-go's ErroredField.Value nil)


def _field(path: str, value: object, reason: str) -> str:
    text = path if value is NO_VALUE else f"{path} = '{_go_value(value)}'"
    return f"{text} ({reason})" if reason else text


def _go_value(value: object) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_go_value(v) for v in value) + "]"
    return str(value)


class DatastoreError(CalicoError):
    """The datastore could not be reached or answered with an unexpected error."""


class ConnectionFailed(DatastoreError):
    """The datastore is unreachable (transient: callers back off and retry)."""


class Unauthorized(DatastoreError):
    """The datastore rejected our credentials (fatal for startup)."""


class Compacted(DatastoreError):
    """A watch asked for a revision the datastore has already compacted away."""

    def __init__(self, requested: int, compact_revision: int):
        self.requested = requested
        self.compact_revision = compact_revision
        super().__init__(
            f"required revision {requested} has been compacted (compact revision {compact_revision})"
        )


class ResourceError(CalicoError):
    """An operation on one named resource failed; ``identifier`` names it."""

    def __init__(self, identifier: str, detail: str = ""):
        self.identifier = identifier
        self.detail = detail
        super().__init__(self._message())

    def _message(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


class NotFound(ResourceError):
    def _message(self) -> str:
        # (libcalico-go's etcd backend has no underlying error here: Go prints it as <nil>)
        return f"resource does not exist: {self.identifier} with error: {self.detail or '<nil>'}"


class AlreadyExists(ResourceError):
    def _message(self) -> str:
        return f"resource already exists: {self.identifier} with error: {self.detail or 'key exists'}"


class Conflict(ResourceError):
    def _message(self) -> str:
        return f"update conflict: {self.identifier}" + (f" ({self.detail})" if self.detail else "")
