"""Job functions stored in the persistent job store.

APScheduler persists a job as a reference to a module-level callable plus its arguments, so the jobs here
take only strings and JSON-like values and find the running ``SchedulerService`` by its instance name.
A job that fires after a restart therefore reaches the new service instance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scheduler.errors import ServiceNotRunning

if TYPE_CHECKING:
    from scheduler.service import SchedulerService

_services: dict[str, SchedulerService] = {}


def register(name: str, service: SchedulerService) -> None:
    _services[name] = service


def unregister(name: str, service: SchedulerService) -> None:
    if _services.get(name) is service:
        del _services[name]


def _service(name: str) -> SchedulerService:
    try:
        return _services[name]
    except KeyError:
        raise ServiceNotRunning(
            f"job for scheduler instance {name!r} fired but no SchedulerService of that name is running"
        ) from None


async def intent_analysis_job(instance: str) -> None:
    await _service(instance).run_intent_analysis()


async def campaign_job(instance: str, campaign_id: str) -> None:
    await _service(instance).run_campaign(campaign_id)


async def deferred_prompt_job(instance: str, prompt: dict[str, Any], respect_policy: bool) -> None:
    await _service(instance).deliver_deferred(prompt, respect_policy)


async def campaign_sync_job(instance: str) -> None:
    await _service(instance).sync_campaigns()
