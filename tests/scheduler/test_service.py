"""SchedulerService on the real embedded bus and a real SQLite job store.

Timing tolerances: one-off jobs are scheduled 1-2 s ahead and awaited for up to 6 s.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler import db
from scheduler.campaigns import CampaignSpec
from scheduler.service import SchedulerService
from server.storage.delivery_ledger import SqlDeliveryLedger
from tests.scheduler.conftest import PromptCollector, ServiceFactory, eventually


def now() -> datetime:
    return datetime.now(UTC)


def campaign(users: list[str], at: datetime, **extra: object) -> CampaignSpec:
    return CampaignSpec.model_validate(
        {
            "name": "renewal",
            "audience": {"user_ids": users},
            "message": "Your plan renews tomorrow.",
            "schedule": {"at": at.isoformat()},
            **extra,
        }
    )


async def test_campaign_publishes_one_prompt_per_audience_user(
    make_service: ServiceFactory, collector: PromptCollector
) -> None:
    service = make_service()
    await service.start()
    created = await service.create_campaign(campaign(["alice", "bob", "carol"], now() + timedelta(seconds=1)))
    before = await service.campaign_deliveries(created.id)
    assert {(d["user_id"], d["status"]) for d in before} == {
        ("alice", "scheduled"),
        ("bob", "scheduled"),
        ("carol", "scheduled"),
    }

    bodies = await collector.wait_for(3, timeout_s=6)

    assert sorted(b["user_id"] for b in bodies) == ["alice", "bob", "carol"]
    assert all(b["text"] == "Your plan renews tomorrow." for b in bodies)
    keys = {b["idempotency_key"] for b in bodies}
    assert len(keys) == 3 and all(k.startswith(f"campaign:{created.id}:") for k in keys)
    after = await service.campaign_deliveries(created.id)
    assert {d["status"] for d in after} == {"published"}  # no RTC node took them
    await eventually(lambda: service.get_campaign(created.id).status == "completed")


async def test_a_run_repeated_for_the_same_time_publishes_nothing_new(
    make_service: ServiceFactory, collector: PromptCollector
) -> None:
    service = make_service()
    await service.start()
    created = await service.create_campaign(campaign(["alice"], now() + timedelta(hours=1)))
    assert await service.run_campaign(created.id) == 1
    # As if the job ran again for the same scheduled time (crash after publish, redelivery).
    with service.engine.begin() as conn:
        conn.execute(db.campaigns.update().values(status="active"))
    assert await service.run_campaign(created.id) == 0
    await collector.wait_for(1, timeout_s=2)
    assert len(collector.messages) == 1


async def test_restart_keeps_campaigns_and_their_jobs(
    make_service: ServiceFactory, collector: PromptCollector
) -> None:
    first = make_service()
    await first.start()
    created = await first.create_campaign(campaign(["dora", "eve"], now() + timedelta(seconds=2)))
    await first.stop()

    second = make_service()
    await second.start()
    assert [c.id for c in second.list_campaigns()] == [created.id]
    job = second.scheduler.get_job(f"campaign:{created.id}")
    assert job is not None and job.next_run_time is not None

    bodies = await collector.wait_for(2, timeout_s=6)
    assert sorted(b["user_id"] for b in bodies) == ["dora", "eve"]


async def test_pause_and_cancel_stop_the_job(make_service: ServiceFactory) -> None:
    service = make_service()
    await service.start()
    created = await service.create_campaign(
        CampaignSpec.model_validate(
            {
                "name": "weekly",
                "audience": {"intent_label": "sales"},
                "intent": "upsell",
                "schedule": {"cron": "0 9 * * MON"},
            }
        )
    )
    job_id = f"campaign:{created.id}"
    assert service.next_run_time(created.id) is not None
    await service.pause_campaign(created.id)
    assert service.scheduler.get_job(job_id).next_run_time is None  # type: ignore[union-attr]
    await service.resume_campaign(created.id)
    assert service.scheduler.get_job(job_id).next_run_time is not None  # type: ignore[union-attr]
    await service.cancel_campaign(created.id)
    assert service.scheduler.get_job(job_id) is None


async def test_rate_limit_defers_the_second_prompt_until_the_interval_passed(
    make_service: ServiceFactory, collector: PromptCollector
) -> None:
    service = make_service(per_user_min_interval_s=2)
    await service.start()
    first = await service.send_prompt_now("frank", text="one", respect_policy=True)
    second = await service.send_prompt_now("frank", text="two", respect_policy=True)
    other = await service.send_prompt_now("gina", text="three", respect_policy=True)
    assert (first["status"], second["status"], other["status"]) == ("published", "deferred", "published")

    await collector.wait_for(2, timeout_s=2)
    assert sorted(b["text"] for b in collector.bodies()) == ["one", "three"]
    sent_at = now()
    bodies = await collector.wait_for(3, timeout_s=6)
    assert bodies[-1]["text"] == "two"
    assert now() - sent_at >= timedelta(seconds=1)  # waited out (most of) the 2 s interval


async def test_quiet_hours_defer_to_their_end(
    make_service: ServiceFactory, collector: PromptCollector
) -> None:
    hour = now().hour
    service = make_service(quiet_hours=(hour, (hour + 2) % 24))
    await service.start()
    result = await service.send_prompt_now("hana", text="good morning", respect_policy=True)
    assert result["status"] == "deferred"

    job = service.scheduler.get_job(f"prompt:{result['idempotency_key']}")
    assert job is not None
    expected_end = now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    assert abs(job.next_run_time - expected_end) < timedelta(hours=1)  # the top of an hour, 1-2 h away
    assert job.next_run_time.minute == 0 and job.next_run_time > now()
    assert collector.messages == []


async def test_callback_requested_by_the_agent_is_published_when_due(
    make_service: ServiceFactory, collector: PromptCollector
) -> None:
    service = make_service(per_user_min_interval_s=3600)
    await service.start()
    callback_id = await service.schedule_callback("ivan", now() + timedelta(seconds=1), "billing question")
    assert callback_id
    bodies = await collector.wait_for(1, timeout_s=6)
    assert bodies[0]["user_id"] == "ivan" and "billing question" in bodies[0]["text"]
    assert bodies[0]["idempotency_key"] == callback_id and callback_id.startswith("callback:")


def test_service_implements_the_agents_callback_scheduler(make_service: ServiceFactory) -> None:
    from agent.tools import CallbackScheduler

    assert isinstance(make_service(), CallbackScheduler)


async def test_admin_send_now_ignores_the_rate_limit(
    make_service: ServiceFactory, collector: PromptCollector
) -> None:
    service: SchedulerService = make_service(per_user_min_interval_s=3600)
    await service.start()
    assert (await service.send_prompt_now("jo", text="a"))["status"] == "published"
    assert (await service.send_prompt_now("jo", text="b"))["status"] == "published"
    await collector.wait_for(2, timeout_s=3)


async def test_delivery_status_comes_from_the_nodes_once_published(
    make_service: ServiceFactory, collector: PromptCollector, deliveries: SqlDeliveryLedger
) -> None:
    """One ledger row per prompt: the scheduler wrote it up to ``published``, the node that speaks it
    moves the same row on (``claimed``, ``delivered``)."""
    from messaging.schemas import ProactivePrompt

    ledger = deliveries
    service = make_service()
    await service.start()
    created = await service.create_campaign(campaign(["wes", "xia"], now() + timedelta(hours=1)))
    await service.run_campaign(created.id)
    await collector.wait_for(2, timeout_s=3)
    # What an RTC node does when it speaks the prompt to wes in his live call.
    spoken = next(m for m in collector.messages if m.key == "wes")
    prompt = ProactivePrompt.parse(spoken.body)
    assert await ledger.claim(prompt, "node-1") is None
    await ledger.mark_delivered(prompt, "node-1")

    report = {d["user_id"]: d["status"] for d in await service.campaign_deliveries(created.id)}
    assert report == {"wes": "delivered", "xia": "published"}  # no RTC node took xia's yet


async def test_cron_campaign_for_an_intent_audience_reaches_users_whose_latest_intent_matches(
    make_service: ServiceFactory, collector: PromptCollector
) -> None:
    from scheduler.conversations import ConversationForAnalysis

    class Result:
        confidence, follow_up, prompt, when, fallback = 0.9, False, None, None, False

        def __init__(self, label: str) -> None:
            self.label = label

    service = make_service()
    await service.start()
    log = service.conversation_log
    for conversation_id, user, label in [
        ("c1", "yan", "sales"),
        ("c2", "zoe", "sales"),
        ("c3", "zoe", "support"),
    ]:
        conversation = ConversationForAnalysis(conversation_id, user, [], now())
        log.save_intent(conversation, Result(label), None, now())
    created = await service.create_campaign(
        CampaignSpec.model_validate(
            {
                "name": "upsell",
                "audience": {"intent_label": "sales"},
                "intent": "upsell_premium",
                "schedule": {"cron": "0 9 * * *", "timezone": "Europe/Paris"},
            }
        )
    )
    next_run = service.next_run_time(created.id)
    assert next_run is not None and next_run.astimezone(ZoneInfo("Europe/Paris")).hour == 9

    assert await service.run_campaign(created.id) == 1  # zoe's latest intent is support now
    bodies = await collector.wait_for(1, timeout_s=3)
    assert (bodies[0]["user_id"], bodies[0]["intent"], bodies[0]["text"]) == ("yan", "upsell_premium", None)
    assert service.get_campaign(created.id).status == "active"  # a cron campaign keeps running
    assert service.next_run_time(created.id) == next_run
