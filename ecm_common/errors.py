"""The error types a user can cause, each with its exit status."""

from __future__ import annotations


class EcmError(Exception):
    """Base of every error that ends a command with one clear line instead of a traceback."""

    exit_code = 1


class ConfigError(EcmError):
    """A bad flag, environment variable or configuration file value."""

    exit_code = 2


class DatabaseUnavailable(EcmError):
    """The database cannot be reached or refused the connection."""

    exit_code = 3
