"""What the coordinator remembers of each party between jobs: its public schemas and its
current signed epoch key, so that a query is one call per party.

Both are public, and both are asked again together whenever either is missing or stale.

* Schemas are kept a minute (:data:`SCHEMA_TTL_SECONDS`). A party's own checks of the spec
  always decide, so a stale schema can only make a party refuse, never compute on the wrong
  thing; a held "unavailable" is asked again before it is believed (the file may have been
  fixed since).
* An epoch key is kept until it nears its expiry, until the connection to the party drops
  (a restarted party has a new epoch, and a config change means a restart), or until a job
  that used it fails, whichever comes first.

Any failed job drops what is held for its parties, so the next job asks them again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mpc.protocol.epochs import SignedEpochKey
from mpc.protocol.schema import DatasetInfo

#: How long a party's schemas are reused without asking again.
SCHEMA_TTL_SECONDS = 60.0
#: An epoch key is not used for a new job when it expires sooner than this (a job must end
#: within its epoch; the party keeps an old epoch until it expires).
KEY_MARGIN_SECONDS = 300.0


@dataclass(frozen=True)
class PartyView:
    """One party's answer to Describe: public schemas and its current epoch key (if any)."""

    schemas: list[DatasetInfo]
    epoch_key: SignedEpochKey | None
    #: The link's connection generation when it was fetched (see :meth:`PartyCache.epoch_key`).
    generation: int = 0


class PartyCache:
    def __init__(
        self,
        ttl: float = SCHEMA_TTL_SECONDS,
        margin: float = KEY_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._ttl = ttl
        self._margin = margin
        self._clock = clock
        self._wall = wall
        self._held: dict[str, tuple[float, PartyView]] = {}
        self._keys: dict[str, tuple[SignedEpochKey, int]] = {}
        self._lock = threading.Lock()

    def schemas(self, party_id: str) -> list[DatasetInfo] | None:
        """The party's schemas if fetched within the TTL, else None."""
        with self._lock:
            held = self._held.get(party_id)
        if held is None or self._clock() - held[0] > self._ttl:
            return None
        return held[1].schemas

    def epoch_key(self, party_id: str, generation: int = 0) -> SignedEpochKey | None:
        """The party's epoch key if it is still good for a new job, else None.

        ``generation`` is the link's connection generation now: a key fetched over an earlier
        connection may belong to a process that has since restarted (and lost its epoch).
        """
        with self._lock:
            held = self._keys.get(party_id)
        if held is None or held[1] != generation:
            return None
        key = held[0]
        if key.not_after - self._wall() < self._margin:
            return None
        return key

    def put(self, party_id: str, view: PartyView) -> None:
        with self._lock:
            self._held[party_id] = (self._clock(), view)
            if view.epoch_key is not None:
                self._keys[party_id] = (view.epoch_key, view.generation)
            else:
                self._keys.pop(party_id, None)

    def drop(self, party_ids: Iterable[str]) -> None:
        """Forget what is held for these parties (after a job involving them failed)."""
        with self._lock:
            for pid in party_ids:
                self._held.pop(pid, None)
                self._keys.pop(pid, None)


__all__ = ["KEY_MARGIN_SECONDS", "SCHEMA_TTL_SECONDS", "PartyCache", "PartyView"]
