"""The reference coordinator's long-poll bookkeeping (issue 23, item 7): a worker is watched only
while one of its polls runs, so timed-out, answered and dropped polls leave nothing behind."""

from __future__ import annotations

import asyncio

from rma_coordinator.api.deps import Notifier


def test_the_notifier_forgets_a_worker_when_its_last_poll_is_over() -> None:
    """Issue 23, item 7: timed-out, answered and dropped polls leave no event behind."""

    async def scenario() -> None:
        notifier = Notifier()
        with notifier.watch("w1") as first:
            with notifier.watch("w1") as second:
                assert first is second and notifier.waiting("w1")
            assert notifier.waiting("w1")  # one poll still waits
        assert len(notifier) == 0 and not notifier.waiting("w1")
        with notifier.watch("w2") as event:
            notifier.notify("w2")
            assert event.is_set() and len(notifier) == 0
            with notifier.watch("w2") as again:  # the poll's next round watches anew
                assert again is not event
        assert len(notifier) == 0
        try:
            with notifier.watch("w3"):
                raise ConnectionResetError  # the client went away
        except ConnectionResetError:
            pass
        assert len(notifier) == 0

    asyncio.run(scenario())
