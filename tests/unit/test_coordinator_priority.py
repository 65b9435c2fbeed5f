"""The proxy's gate (rma_coordinator/api/priority.py, issue 26 item 3): in flight bounded per
worker; when all are full a bounded, timed queue in which a contributor's request goes first."""

from __future__ import annotations

import asyncio

import pytest

from rma_coordinator.api.priority import Full, Gate, Slot


def test_a_worker_with_room_is_taken_in_the_order_given() -> None:
    async def run() -> list[str]:
        gate = Gate(max_in_flight=1)
        return [await gate.acquire("s", ["a", "b"], keyed=False) for _ in range(2)]

    assert asyncio.run(run()) == ["a", "b"]


def test_when_all_are_full_a_contributor_goes_before_those_queued_earlier() -> None:
    async def run() -> list[str]:
        gate, served = Gate(max_in_flight=1), []
        assert await gate.acquire("s", ["a"], keyed=False) == "a"

        async def request(tag: str, keyed: bool) -> None:
            worker = await gate.acquire("s", ["a"], keyed=keyed)
            served.append(tag)
            gate.release("s", worker)

        tasks = []
        for tag, keyed in (("b", False), ("c", False), ("k", True)):
            tasks.append(asyncio.create_task(request(tag, keyed)))
            await asyncio.sleep(0)  # queued in this order
        assert gate.waiting("s") == 3 and gate.in_flight("a") == 1
        gate.release("s", "a")
        await asyncio.gather(*tasks)
        assert gate.in_flight("a") == 0
        return served

    assert asyncio.run(run()) == ["k", "b", "c"]


def test_the_queue_is_bounded_in_length_and_in_time() -> None:
    async def run() -> None:
        gate = Gate(max_in_flight=1, queue_max=1, queue_wait=0.05)
        await gate.acquire("s", ["a"], keyed=False)
        waiting = asyncio.create_task(gate.acquire("s", ["a"], keyed=False))
        await asyncio.sleep(0)
        with pytest.raises(Full):
            await gate.acquire("s", ["a"], keyed=True)  # the queue is full
        with pytest.raises(Full):
            await waiting  # waited its 0.05 s
        assert gate.in_flight("a") == 1 and gate.waiting("s") == 0

    asyncio.run(run())


def test_a_slot_is_given_back_once_and_a_waiter_for_other_workers_is_passed_over() -> None:
    async def run() -> None:
        gate = Gate(max_in_flight=1)
        await gate.acquire("s", ["a"], keyed=False)
        await gate.acquire("s", ["b"], keyed=False)
        for_b = asyncio.create_task(gate.acquire("s", ["b"], keyed=True))
        await asyncio.sleep(0)
        slot = Slot(gate, "s", "a")
        slot.release()
        slot.release()
        assert gate.in_flight("a") == 0 and not for_b.done()  # a's slot is not b's
        gate.release("s", "b")
        assert await for_b == "b" and gate.in_flight("b") == 1

    asyncio.run(run())
