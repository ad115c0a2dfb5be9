"""Errors every profile store raises; backend errors (redis-py, sockets) never cross this boundary.

    StoreError                  any failure of a profile store
    ├── StoreUnavailable        the store cannot be reached now (down, timeout, loading, read-only
    │   │                       replica, failover, cluster resharding): transient; callers keep
    │   │                       last-known profiles and retry
    │   └── StoreWriteUnconfirmed  the primary applied a write but too few replicas acknowledged
    │                           it in time: a failover now may lose it, so callers treat it as
    │                           not written (a retry may then apply it twice, never zero times)
    ├── StoreAccessDenied       credentials or ACL refused: not transient, fix the configuration
    ├── StoreDataError          stored data cannot be read back (corrupt field, wrong key type)
    └── StoreConfigError        bad URL or options (also a ValueError); raised before any I/O

Invalid arguments (NaN latency, alpha outside (0, 1], unknown state) raise plain ValueError:
they are the caller's bug, not the store's failure.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


class StoreError(Exception):
    """Base of every profile-store failure."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now; retrying later may succeed."""


class StoreWriteUnconfirmed(StoreUnavailable):
    """The write ran on the primary, but fewer replicas than required hold it."""


class StoreAccessDenied(StoreError):
    """The store refused the credentials, or the ACL user may not run this command or key."""


class StoreDataError(StoreError):
    """A stored profile cannot be decoded."""


class StoreConfigError(StoreError, ValueError):
    """The store URL or its options are invalid."""


@dataclass
class StoreFailureCounts:
    """Failed store calls by kind, counted where backend errors are mapped: what an outage or a
    failover cost, next to the callers' own counts of what they kept and replayed."""

    unavailable: int = 0   # not reached, timed out, failing over (the call may or may not have run)
    unconfirmed: int = 0   # ran on the primary, not acknowledged by the replicas it had to reach
    access_denied: int = 0
    data: int = 0
    other: int = 0

    def count(self, error: StoreError) -> None:
        kind = ("unconfirmed" if isinstance(error, StoreWriteUnconfirmed) else
                "unavailable" if isinstance(error, StoreUnavailable) else
                "access_denied" if isinstance(error, StoreAccessDenied) else
                "data" if isinstance(error, StoreDataError) else "other")
        setattr(self, kind, getattr(self, kind) + 1)

    def as_dict(self) -> dict[str, int]:
        return {field.name: getattr(self, field.name) for field in fields(self)}
