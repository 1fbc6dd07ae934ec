"""Per-host politeness for the downloader: an adaptive concurrency limit and an optional request rate.

A host starts with ``per_host`` requests in flight. A 429 or 503 answer halves that host's limit (down
to one, at most once per round trip); every other answer gives one slot back, up to ``per_host``
(additive increase, multiplicative decrease, as TCP does). A host that rate-limits us is therefore
slowed down as a whole, while the URL that got the 429 itself waits for its ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import collections
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator


class HostGate:
    """The adaptive concurrency limit of one host."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.active = 0
        self._grace = 0  # answers still due from before the last decrease
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        """Wait for a slot (first come, first served)."""
        if self.active < int(self.limit) and not self._waiters:
            self.active += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the slot is counted for us before we are woken
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back."""
        self.active -= 1
        self._wake()

    def feedback(self, throttled: bool) -> None:
        """Halve the limit after a 429/503, otherwise grow it back by one slot.

        Answers to requests that were already in flight when the limit was halved cannot reflect it:
        they do not halve it again (one decrease per round trip, as in TCP).
        """
        in_grace = self._grace > 0
        self._grace = max(0, self._grace - 1)
        if throttled:
            if not in_grace:
                self.limit = max(1.0, self.limit / 2)
                self._grace = self.active
        elif self.limit < self.ceiling:
            self.limit = min(float(self.ceiling), self.limit + 1)
            self._wake()

    def _wake(self) -> None:
        while self._waiters and self.active < int(self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)


class HostLimits:
    """The gates of every host seen, plus a minimum interval between request starts per host."""

    def __init__(self, per_host: int, rate_per_host: float = 0.0) -> None:
        self.per_host = per_host
        self.interval = 1.0 / rate_per_host if rate_per_host > 0 else 0.0
        self._gates: dict[str, HostGate] = {}
        self._next_start: dict[str, float] = {}

    def gate(self, host: str) -> HostGate:
        """The gate of ``host`` (created on first use)."""
        gate = self._gates.get(host)
        if gate is None:
            gate = self._gates[host] = HostGate(self.per_host)
        return gate

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[HostGate]:
        """Hold one of the host's slots, starting no earlier than its rate limit allows."""
        gate = self.gate(host)
        await gate.acquire()
        try:
            if self.interval:
                now = time.monotonic()
                start = max(now, self._next_start.get(host, 0.0))
                self._next_start[host] = start + self.interval
                if start > now:
                    await asyncio.sleep(start - now)
            yield gate
        finally:
            gate.release()
