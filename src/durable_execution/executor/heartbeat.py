"""The heartbeat: an executor renews the leases of everything it runs, in one storage call per
period, and stops the runs whose claim was lost."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from durable_execution.executor.loop import BackgroundLoop
from durable_execution.executor.options import LoggerLike
from durable_execution.executor.runner import RunningExecution, StopReason
from durable_execution.storage.protocol import DurableStorage
from durable_execution.storage.transitions import renewed_expiry

__all__ = ["Heartbeat"]

_BEATS_PER_LEASE = 3


class Heartbeat:
    """Renews the leases of ``running`` every ``lease_ms / 3``.

    Only leases that can still grow are renewed: one that already reached its backstop (a
    task whose timeout is shorter than the lease) costs nothing. A renewal refused means the
    claim is lost (its lease ended, it was cancelled, another executor took it over): a run
    still going is stopped, since its outcome would be refused anyway. A failing renewal
    (the storage is down) is retried every ``lease_ms / 6``; if the leases end meanwhile, the
    outcome writer's deadline ends with them, so a late write cannot overwrite a successor's.
    """

    def __init__(
        self,
        *,
        storage: DurableStorage,
        executor_id: str,
        lease_ms: int,
        running: Mapping[str, RunningExecution],
        clock: Callable[[], int],
        logger: LoggerLike,
    ) -> None:
        self._storage = storage
        self._executor_id = executor_id
        self._lease_ms = lease_ms
        self._running = running
        self._clock = clock
        self._logger = logger
        interval_s = lease_ms / _BEATS_PER_LEASE / 1000
        # A failed renewal is tried again soon, several times before the leases end: with
        # the loops' usual backoff, two failures in a row would outlast them.
        self._loop = BackgroundLoop(
            "heartbeat", self.beat, interval_s, logger, max_backoff_s=interval_s / 2
        )

    def start(self) -> None:
        """Start renewing (the first beat runs at once)."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop renewing, after the current beat."""
        await self._loop.stop()

    async def beat(self) -> bool:
        """Renew the leases that can still grow, in one call; stop the runs that lost theirs."""
        held = [
            running
            for running in self._running.values()
            if running.lease_end_ms < (running.timeout_at_ms or 0)
        ]
        if not held:
            return False
        now = self._clock()
        leases = [(r.record.execution_id, r.record.lease_token) for r in held]
        renewed = await self._storage.renew_leases(
            executor_id=self._executor_id, leases=leases, now_ms=now, lease_ms=self._lease_ms
        )
        for running, ok in zip(held, renewed, strict=True):
            if ok:
                running.lease_end_ms = renewed_expiry(
                    now, self._lease_ms, running.timeout_at_ms, running.lease_end_ms
                )
            else:
                self._lost(running)
        return False

    def _lost(self, running: RunningExecution) -> None:
        """The claim of ``running`` is lost: stop its run if it still goes (one whose outcome
        is being written learns it from the write)."""
        record = running.record
        task = running.execute_task
        if self._running.get(record.execution_id) is not running or task is None or task.done():
            return
        self._logger.warning(
            "execution %s (%s) lost its lease (it expired, was cancelled or taken over); "
            "its run is stopped",
            record.execution_id,
            record.task_id,
        )
        running.stop(StopReason.LEASE_LOST)
