"""Errors every profile store raises; backend errors (redis-py, sockets) never cross this boundary.

    StoreError                  any failure of a profile store
    ├── StoreUnavailable        the store cannot be reached now (down, timeout, loading, read-only
    │                           replica): transient; callers keep last-known profiles and retry
    ├── StoreAccessDenied       credentials or ACL refused: not transient, fix the configuration
    ├── StoreDataError          stored data cannot be read back (corrupt field, wrong key type)
    └── StoreConfigError        bad URL or options (also a ValueError); raised before any I/O

Invalid arguments (NaN latency, alpha outside (0, 1], unknown state) raise plain ValueError:
they are the caller's bug, not the store's failure.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every profile-store failure."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now; retrying later may succeed."""


class StoreAccessDenied(StoreError):
    """The store refused the credentials, or the ACL user may not run this command or key."""


class StoreDataError(StoreError):
    """A stored profile cannot be decoded."""


class StoreConfigError(StoreError, ValueError):
    """The store URL or its options are invalid."""
