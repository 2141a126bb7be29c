"""What a service refuses, in domain terms: the API maps each class to its HTTP status, the CLI
or a chat button to their own answer. Services never import aiohttp or the API's error type."""

from __future__ import annotations


class ServiceError(Exception):
    """A refused request: a stable machine ``code``, a message for people, the offending field.

    ``item`` is the index of the offending entry when the request held several (a batch).
    """

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.item: int | None = None


class Invalid(ServiceError):
    """Well-formed input that is semantically wrong (an unknown template, a past schedule)."""


class MissingField(Invalid):
    """A field the request needs is absent (which one may depend on the others)."""


class NotFound(ServiceError):
    """The resource named does not exist, or not for this caller."""


class Conflict(ServiceError):
    """The resource's state forbids the change (already sent, key reused with another body)."""


class Forbidden(ServiceError):
    """The caller is known but may not do this (a chat click by someone not on the team)."""
