"""A per-CRM memo of metadata that every capture reads and admins rarely change.

Custom field declarations and the roster of active reps are read by each
capture, form submission and import; reading them once per unit of work cost
a query each. :class:`MetadataCache` keeps them for
``settings.metadata_cache_seconds`` (default 5; 0 reads afresh every time):

- a change made through crmcore's services (``crm.custom_fields.define``,
  ``crm.users.add|update|disable|enable``) calls
  :meth:`~crmcore.context.HookContext.metadata_changed`, which drops the cached
  values when its transaction commits, in every CRM of this process on the
  same database (the unit of work that made the change reads afresh at once);
- a change made by another process, or by hand in SQL, is seen within the TTL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: Generation per database, bumped by every committed metadata change in this process.
_generations: dict[str, int] = {}
_lock = threading.Lock()


class MetadataCache:
    """Values by key, each kept for *ttl* seconds unless the database's generation moves on."""

    def __init__(self, database: str, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.database = database
        self.ttl = ttl
        self.clock = clock
        #: key -> (generation when loading began, loaded at, value)
        self._entries: dict[str, tuple[int, float, Any]] = {}

    def get(self, key: str, load: Callable[[], T]) -> T:
        """The cached value of *key*, or what *load* returns (then kept)."""
        if self.ttl <= 0:
            return load()
        generation = _generations.get(self.database, 0)
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None and entry[0] == generation and now - entry[1] < self.ttl:
            value: T = entry[2]
            return value
        # The generation read *before* loading: a change committed meanwhile leaves this entry stale.
        value = load()
        self._entries[key] = (generation, now, value)
        return value

    def invalidate(self) -> None:
        """Forget every cached value, in each CRM of this process on this database."""
        with _lock:
            _generations[self.database] = _generations.get(self.database, 0) + 1
