"""The virtual clock itself: jumps to the next timer, keeps real I/O, fails a deadlock."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from tests.fakes import clock as clock_mod
from tests.fakes.clock import ManualClock, VirtualTime, VirtualTimeDeadlock


def test_manual_clock_moves_only_forward() -> None:
    clock = ManualClock(5.0)
    assert clock() == 5.0 and clock.advance(0.25) == 5.25 == clock.now
    with pytest.raises(ValueError):
        clock.advance(-1)


async def test_an_hour_of_sleep_takes_no_real_time(virtual_time: VirtualTime) -> None:
    started = time.monotonic()
    await asyncio.sleep(3600)
    assert virtual_time.elapsed == pytest.approx(3600)
    assert asyncio.get_running_loop().time() == virtual_time()
    assert time.monotonic() - started < 5  # would be an hour on the real clock


async def test_timeouts_fire_at_their_exact_virtual_instant(virtual_time: VirtualTime) -> None:
    loop = asyncio.get_running_loop()
    order: list[tuple[str, float]] = []
    loop.call_later(2.0, lambda: order.append(("b", virtual_time.elapsed)))
    loop.call_later(0.5, lambda: order.append(("a", virtual_time.elapsed)))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.Event().wait(), 1.0)
    assert virtual_time.elapsed == pytest.approx(1.0)
    await asyncio.sleep(5)
    assert [name for name, _ in order] == ["a", "b"]
    assert [at for _, at in order] == pytest.approx([0.5, 2.0])


async def test_real_io_still_arrives(virtual_time: VirtualTime) -> None:
    a, b = socket.socketpair()
    try:
        reader, writer = await asyncio.open_connection(sock=a)
        b.sendall(b"ping\n")
        assert await reader.readline() == b"ping\n"
        writer.close()
    finally:
        b.close()
    assert virtual_time.elapsed < 1.0


def test_waiting_for_nothing_fails_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    # The failure surfaces from the loop itself (as it would end a test), so run one here.
    monkeypatch.setattr(clock_mod, "IDLE_LIMIT_S", 0.05)
    loop = asyncio.new_event_loop()
    try:
        clock = VirtualTime(loop)
        with pytest.raises(VirtualTimeDeadlock):
            loop.run_until_complete(asyncio.Event().wait())
        clock.close()
    finally:
        loop.close()


async def test_the_loop_gets_its_real_clock_back() -> None:
    loop = asyncio.get_running_loop()
    clock = VirtualTime(loop)
    await asyncio.sleep(100)
    clock.close()
    real = time.monotonic()
    assert abs(loop.time() - real) < 1.0
