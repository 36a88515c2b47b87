"""The one root exception of covalent and its few subclasses.

Each class carries the exit code the CLI uses and the HTTP status the server answers
with, so that both map errors in one place. Messages say what is wrong and what to do.
"""

from __future__ import annotations


class CovalentError(Exception):
    """Root of every error covalent raises on purpose."""

    exit_code = 1
    http_status = 500


class ConfigError(CovalentError):
    """The configuration file or a configuration value is invalid."""

    exit_code = 3
    http_status = 500


class WorkflowError(CovalentError):
    """A lattice or electron cannot be built or submitted as written."""

    exit_code = 4
    http_status = 422


class ExecutorError(CovalentError):
    """An executor is unknown, misconfigured or failed to start."""

    exit_code = 5
    http_status = 422


class ExecutorSettingError(ExecutorError, ValueError):
    """An executor was given a setting of the wrong kind or out of range."""


class DispatchNotFoundError(CovalentError):
    """No dispatch with the given id exists on the server."""

    exit_code = 6
    http_status = 404

    def __init__(self, dispatch_id: str, server: str = "") -> None:
        where = f" on the server at {server}" if server else ""
        super().__init__(
            f"No dispatch with id '{dispatch_id}' exists{where}; "
            "check the id (`covalent ls` lists them) and the server address."
        )
        self.dispatch_id = dispatch_id


class ServerUnavailableError(CovalentError):
    """The dispatcher server does not answer."""

    exit_code = 7
    http_status = 503


class StoreUnavailableError(ServerUnavailableError):
    """The server runs but cannot reach its database (an outage); it retries by itself."""

    exit_code = 7
    http_status = 503


class StoreLockedError(CovalentError):
    """Another server already runs the dispatches of this database."""

    exit_code = 7
    http_status = 503


class ServerError(CovalentError):
    """The server answered with an error."""

    exit_code = 8
    http_status = 500


class AuthenticationError(CovalentError):
    """The server needs a token and the request had none, or a wrong one."""

    exit_code = 10
    http_status = 401


class BadRequestError(CovalentError):
    """A request to the server is malformed (a bad manifest, a bad blob, ...)."""

    exit_code = 9
    http_status = 400


class InvalidFieldError(BadRequestError):
    """A field of a request does not fit the API's schema; ``field`` names it
    (``nodes[3].metadata``, ``query.offset``)."""

    http_status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NodeNotFoundError(BadRequestError):
    """A request names a node that its dispatch does not have."""

    http_status = 404


class ValueUnavailableError(CovalentError):
    """A stored value (an output, the result, an input) cannot be unpickled in this
    process: a module it needs is not installed here, or its class's unpickling raised.
    The message names the value and the original error, which is its ``__cause__``."""


class StorageFullError(CovalentError):
    """The server's store (blob folder or database) has no space left."""

    exit_code = 11
    http_status = 507
