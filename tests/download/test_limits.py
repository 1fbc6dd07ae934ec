"""Per-host politeness: the adaptive concurrency gate and the request-rate limit."""

from __future__ import annotations

import asyncio
import time

from data.download.limits import HostGate, HostLimits


def test_gate_halves_on_throttling_and_grows_back_one_slot_per_answer():
    gate = HostGate(8)
    gate.feedback(throttled=True)
    gate.feedback(throttled=True)  # nothing in flight: each answer is a new round trip
    assert gate.limit == 2
    for _ in range(3):
        gate.feedback(throttled=False)
    assert gate.limit == 5
    for _ in range(10):
        gate.feedback(throttled=False)
    assert gate.limit == 8  # never above per_host
    for _ in range(10):
        gate.feedback(throttled=True)
    assert gate.limit == 1  # never below one


def test_gate_halves_once_for_answers_already_in_flight():
    async def scenario() -> float:
        gate = HostGate(8)
        for _ in range(4):
            await gate.acquire()
        for _ in range(4):  # four requests sent together, all throttled: one decrease
            gate.release()
            gate.feedback(throttled=True)
        return gate.limit

    assert asyncio.run(scenario()) == 4


def test_gate_never_exceeds_its_current_limit():
    async def scenario() -> int:
        gate = HostGate(4)
        gate.feedback(throttled=True)  # limit 2
        peak = 0

        async def request() -> None:
            nonlocal peak
            await gate.acquire()
            peak = max(peak, gate.active)
            await asyncio.sleep(0.01)
            gate.release()

        await asyncio.gather(*(request() for _ in range(12)))
        assert gate.active == 0
        return peak

    assert asyncio.run(scenario()) == 2


def test_cancelled_waiter_gives_its_slot_back():
    async def scenario() -> None:
        gate = HostGate(1)
        await gate.acquire()
        waiter = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        gate.release()
        assert gate.active == 0
        await asyncio.wait_for(gate.acquire(), 1)  # the slot is free again

    asyncio.run(scenario())


def test_rate_per_host_spaces_request_starts_per_host():
    async def scenario() -> tuple[list[float], list[float]]:
        limits = HostLimits(per_host=8, rate_per_host=20.0)  # one start every 50 ms per host
        starts: dict[str, list[float]] = {"a": [], "b": []}

        async def request(host: str) -> None:
            async with limits.slot(host):
                starts[host].append(time.monotonic())

        await asyncio.gather(*(request(h) for h in "aaaab"))
        return starts["a"], starts["b"]

    a, b = asyncio.run(scenario())
    gaps = [later - earlier for earlier, later in zip(a, a[1:])]
    assert len(a) == 4 and min(gaps) >= 0.045
    assert b[0] - a[0] < 0.045  # another host is not held back
