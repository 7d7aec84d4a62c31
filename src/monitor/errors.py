"""Errors a user can act on; each message says what is wrong and where."""


class MonitorError(Exception):
    """Base of every error the CLI reports as one line on stderr."""


class ConfigError(MonitorError):
    """A configuration file or setting is missing or invalid."""


class StorageError(MonitorError):
    """The database cannot be reached, migrated or used."""


class NotFoundError(MonitorError):
    """A named thing (article, feed) does not exist."""
