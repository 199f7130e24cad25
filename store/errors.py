"""Exceptions the store raises, so callers can keep a call going on any of them."""

from __future__ import annotations


class StoreError(Exception):
    """Base class: anything the store could not do."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or opened; the message names the host or file.

    Raised at open (and when a live connection is lost). Never answered by a
    silent switch to another backend: the operator chooses SQLite in config.
    """


class StoreWriteError(StoreError):
    """A write failed on a reachable database: disk full, read-only file, I/O error.

    Counted in `Database.stats.write_errors`; the call in progress carries on,
    and turns stay in the journal for a later replay.
    """


class SchemaTooNew(StoreError):
    """The database has migrations this build does not know: a newer leadline ran here."""
