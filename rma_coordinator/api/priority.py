"""Priority when the pool is at capacity (issue 26, item 3): the proxy lets at most
`--max-in-flight` requests be on their way to one worker at a time. When every worker serving a
service is full, a request waits in that service's queue (at most `--queue-max` of them, at most
`--queue-wait` seconds; otherwise 429 with Retry-After) — and a request carrying the contributor
key of a worker with credits (`X-RMA-Contributor-Key`, issued at registration) goes ahead of
every request without one, whenever it came. Among equals, first come first served.

One gate per process, on the event loop only (no lock): replicas each bound their own share.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field

KEY_HEADER = "x-rma-contributor-key"


class Full(Exception):
    """No room now and no room in the queue (or the wait ran out): 429."""


@dataclass(order=True)
class _Waiter:
    rank: int  # 0: a contributor's request; 1: anyone's
    turn: int
    candidates: frozenset[str] = field(compare=False)
    future: asyncio.Future[str] = field(compare=False)


@dataclass
class Gate:
    max_in_flight: int = 8
    queue_max: int = 100
    queue_wait: float = 30.0
    _in_flight: dict[str, int] = field(default_factory=dict)
    _queues: dict[str, list[_Waiter]] = field(default_factory=dict)
    _turns: itertools.count[int] = field(default_factory=itertools.count)

    def in_flight(self, worker_id: str) -> int:
        return self._in_flight.get(worker_id, 0)

    def waiting(self, service: str) -> int:
        return sum(1 for w in self._queues.get(service, ()) if not w.future.done())

    async def acquire(self, service: str, workers: list[str], *, keyed: bool) -> str:
        """A worker of `workers` (in the order given) with room, its slot taken; else wait for
        one in the service's queue. Raises Full."""
        for worker_id in workers:
            if self.try_take(worker_id):
                return worker_id
        queue = self._queues.setdefault(service, [])
        if self.waiting(service) >= self.queue_max:
            raise Full
        waiter = _Waiter(
            0 if keyed else 1,
            next(self._turns),
            frozenset(workers),
            asyncio.get_running_loop().create_future(),
        )
        heapq.heappush(queue, waiter)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.future), self.queue_wait)
        except TimeoutError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(service, waiter.future.result())  # handed a slot as time ran out
            waiter.future.cancel()
            raise Full from None

    def try_take(self, worker_id: str) -> bool:
        if self._in_flight.get(worker_id, 0) >= self.max_in_flight:
            return False
        self._in_flight[worker_id] = self._in_flight.get(worker_id, 0) + 1
        return True

    def release(self, service: str, worker_id: str) -> None:
        """A request to `worker_id` is over: its slot goes to the best waiter that may use that
        worker, else back to the worker."""
        queue = self._queues.get(service, [])
        skipped: list[_Waiter] = []
        while queue:
            waiter = heapq.heappop(queue)
            if waiter.future.done():
                continue
            if worker_id in waiter.candidates:
                waiter.future.set_result(worker_id)  # the slot passes on: in flight unchanged
                for other in skipped:
                    heapq.heappush(queue, other)
                return
            skipped.append(waiter)
        for other in skipped:
            heapq.heappush(queue, other)
        left = self._in_flight.get(worker_id, 0) - 1
        if left > 0:
            self._in_flight[worker_id] = left
        else:
            self._in_flight.pop(worker_id, None)


class Slot:
    """One request's place at one worker, given back once, however the request ends."""

    def __init__(self, gate: Gate, service: str, worker_id: str) -> None:
        self._gate, self._service, self.worker_id = gate, service, worker_id
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._gate.release(self._service, self.worker_id)
