"""The outbox with a real Celery worker consuming from Redis (no eager mode).

The worker runs in this process (threads), so it shares the settings overrides and
anymail's test outbox; it has its own database connections, so these tests commit
for real (``transaction=True``). Only the email provider is replaced.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from unittest import mock

import pytest
from anymail.backends import test as anymail_test
from celery import signals
from celery.contrib.testing.worker import start_worker
from django.db import connections, transaction
from kombu.exceptions import OperationalError

from config.celery import app
from reviews import audit, services, tasks
from reviews.models import ApiKey, CaseEvent, Notification, ReviewCase
from tests.factories import approve_case, deny_case, make_case
from tests.reviews.test_notifications import provider_error

HERE = "tests.reviews.test_tasks"
WAIT_SECONDS = 30


# --- the email provider, replaced ---------------------------------------------------


class FlakyEsp(anymail_test.EmailBackend):
    """anymail's test ESP; answers 503 while ``failures`` lasts, then sends."""

    failures = 0
    calls = 0
    lock = threading.Lock()

    def post_to_esp(self, payload, message):
        with FlakyEsp.lock:
            FlakyEsp.calls += 1
            fail = FlakyEsp.failures > 0
            FlakyEsp.failures -= 1 if fail else 0
        if fail:
            raise provider_error(503, {"ErrorCode": 100, "Message": "Maintenance"})
        return super().post_to_esp(payload, message)


class SlowEsp(anymail_test.EmailBackend):
    """anymail's test ESP that holds each send until the test releases it."""

    entered = threading.Event()
    release = threading.Event()

    def post_to_esp(self, payload, message):
        SlowEsp.entered.set()
        SlowEsp.release.wait(WAIT_SECONDS)
        return super().post_to_esp(payload, message)


# --- the worker -----------------------------------------------------------------------


def purge_queue() -> None:
    with app.connection_for_write() as connection:
        app.amqp.TaskConsumer(connection).purge()


def _close_thread_connections(**kwargs) -> None:
    # Worker threads must not keep connections to the test database open.
    connections.close_all()


@pytest.fixture(scope="module")
def celery_worker():
    """A real worker (two threads) on ``REDIS_URL``, for this module's tests."""
    saved = {
        key: app.conf[key]
        for key in ("broker_url", "task_always_eager", "worker_hijack_root_logger")
    }
    app.conf.update(
        broker_url=os.environ["REDIS_URL"],
        task_always_eager=False,
        worker_hijack_root_logger=False,
    )
    signals.task_postrun.connect(_close_thread_connections, weak=False)
    purge_queue()
    try:
        with start_worker(
            app,
            pool="threads",
            concurrency=2,
            perform_ping_check=False,
            shutdown_timeout=WAIT_SECONDS,
        ) as worker:
            yield worker
    finally:
        purge_queue()
        signals.task_postrun.disconnect(_close_thread_connections)
        app.conf.update(saved)


class TaskLog:
    """Tasks the worker finished during one test, with the thread that ran them."""

    def __init__(self) -> None:
        self.finished: list[tuple[str, tuple, str, str]] = []

    def __call__(self, sender=None, args=(), state=None, **kwargs) -> None:
        self.finished.append(
            (sender.name, tuple(args or ()), state, threading.current_thread().name)
        )

    def count(self, name: str) -> int:
        return sum(1 for task, *_ in self.finished if task == name)


@pytest.fixture
def worker(celery_worker, settings, outbox):
    """The running worker, a fresh task log, the flaky ESP and short backoff."""
    purge_queue()
    FlakyEsp.failures = 0
    FlakyEsp.calls = 0
    settings.EMAIL_BACKEND = f"{HERE}.FlakyEsp"
    settings.NOTIFICATION_RETRY_BACKOFF_MAX = 1
    log = TaskLog()
    signals.task_postrun.connect(log, weak=False)
    yield log
    signals.task_postrun.disconnect(log)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"the worker did not get there in {WAIT_SECONDS} s: {what}")
        time.sleep(0.05)


def notification_of(case: ReviewCase) -> Notification:
    return Notification.objects.get(case=case)


def is_status(case: ReviewCase, status: str) -> Callable[[], bool]:
    return lambda: Notification.objects.filter(case=case, status=status).exists()


def codes(case: ReviewCase) -> list[str]:
    return list(
        CaseEvent.objects.filter(case=case, code__startswith="reviews.email.")
        .order_by("pk")
        .values_list("code", flat=True)
    )


# --- the tests ------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class TestDecisionEmailThroughTheWorker:
    def test_a_decision_sends_exactly_one_email(self, reviewer, worker, outbox):
        case = make_case()
        approve_case(case, reviewer)

        wait_for(is_status(case, "sent"), "approval email sent")
        notification = notification_of(case)
        assert len(outbox) == 1
        assert notification.to_email in outbox[0].to[0]
        assert (notification.attempts, notification.times_sent) == (1, 1)
        assert codes(case) == [audit.EMAIL_QUEUED, audit.EMAIL_SENT]
        ((name, args, state, thread),) = worker.finished
        assert (name, args, state) == (
            "reviews.tasks.notification_send",
            (notification.pk,),
            "SUCCESS",
        )
        assert thread != threading.current_thread().name  # not eager

    def test_a_transient_provider_error_is_retried(self, reviewer, worker, outbox):
        FlakyEsp.failures = 1
        case = make_case()
        deny_case(case, reviewer)

        wait_for(is_status(case, "sent"), "denial email sent after a retry")
        notification = notification_of(case)
        assert FlakyEsp.calls == 2
        assert len(outbox) == 1
        assert (notification.attempts, notification.times_sent) == (2, 1)
        assert notification.last_error == ""
        assert codes(case) == [
            audit.EMAIL_QUEUED,
            audit.EMAIL_RETRYING,
            audit.EMAIL_SENT,
        ]
        assert [state for *_, state, _ in worker.finished] == ["RETRY", "SUCCESS"]

    def test_retries_are_bounded_then_the_email_fails(
        self, reviewer, worker, outbox, settings
    ):
        settings.NOTIFICATION_MAX_RETRIES = 2
        FlakyEsp.failures = 100
        case = make_case()
        approve_case(case, reviewer)

        wait_for(is_status(case, "failed"), "email marked failed")
        notification = notification_of(case)
        assert FlakyEsp.calls == 3
        assert outbox == []
        assert notification.attempts == 3
        assert notification.last_error.startswith("Gave up after 3 tries:")
        assert "503" in notification.last_error
        assert codes(case)[-1] == audit.EMAIL_FAILED

    def test_a_lost_dispatch_is_sent_by_the_sweeper(
        self, reviewer, worker, outbox, settings
    ):
        case = make_case()
        # The broker is down when the decision commits: the dispatch is lost
        # (enqueue_after_commit logs it; the decision itself stands).
        broker_down = OperationalError("Error 111 connecting to redis: refused")
        with mock.patch.object(
            tasks.notification_send, "apply_async", side_effect=broker_down
        ):
            approve_case(case, reviewer)
        assert notification_of(case).status == Notification.Status.PENDING
        assert worker.finished == []

        settings.NOTIFICATION_SWEEP_AFTER = timedelta(0)
        tasks.notifications_send_pending.delay()

        wait_for(is_status(case, "sent"), "swept notification sent")
        assert len(outbox) == 1
        assert [name for name, *_ in worker.finished] == [
            "reviews.tasks.notifications_send_pending",
            "reviews.tasks.notification_send",
        ]
        assert notification_of(case).times_sent == 1

    def test_nothing_is_sent_when_the_decision_rolls_back(
        self, reviewer, worker, outbox
    ):
        case = make_case()
        services.review_case_claim(actor=reviewer, case_id=case.pk)
        with pytest.raises(RuntimeError, match="rolled back"), transaction.atomic():
            approve_case(case, reviewer)
            raise RuntimeError("rolled back")

        # A task queued after the decision is done once the worker got that far.
        tasks.notifications_send_pending.delay()
        wait_for(
            lambda: worker.count("reviews.tasks.notifications_send_pending") == 1,
            "sweeper ran",
        )
        assert outbox == []
        assert not Notification.objects.filter(case=case).exists()
        assert worker.count("reviews.tasks.notification_send") == 0
        case.refresh_from_db()
        assert case.state == ReviewCase.State.IN_REVIEW
        assert case.key.status == ApiKey.Status.PENDING_APPROVAL


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class TestConcurrentSends:
    def test_two_sends_of_one_notification_send_once(
        self, reviewer, worker, outbox, settings
    ):
        settings.EMAIL_BACKEND = f"{HERE}.SlowEsp"
        SlowEsp.entered.clear()
        SlowEsp.release.clear()
        case = make_case()
        approve_case(case, reviewer)  # first send: queued after commit
        notification = notification_of(case)
        try:
            wait_for(SlowEsp.entered.is_set, "first send reached the provider")
            # The first send holds the row lock while the provider is slow.
            tasks.notification_send.delay(notification.pk)
            wait_for(
                lambda: worker.count("reviews.tasks.notification_send") == 1,
                "second send finished while the first still sends",
            )
            assert outbox == []  # the second one skipped the locked row
        finally:
            SlowEsp.release.set()

        wait_for(is_status(case, "sent"), "first send done")
        wait_for(lambda: worker.count("reviews.tasks.notification_send") == 2, "both")
        notification.refresh_from_db()
        assert len(outbox) == 1
        assert (notification.attempts, notification.times_sent) == (1, 1)
        assert codes(case).count(audit.EMAIL_SENT) == 1


class TestRetryCountdown:
    @pytest.mark.parametrize("retries", range(12))
    def test_exponential_jittered_and_capped(self, settings, retries):
        settings.NOTIFICATION_RETRY_BACKOFF_MAX = 300
        backoff = min(300, tasks.RETRY_BACKOFF_BASE_SECONDS * 2**retries)
        countdowns = [tasks.retry_countdown(retries) for _ in range(200)]
        assert all(backoff / 2 <= c <= backoff for c in countdowns)
        assert len(set(countdowns)) > 1  # jittered
        # Far below the Redis visibility timeout (3600 s): no second delivery.
        assert max(countdowns) <= 300

    def test_default_cap_is_well_under_the_visibility_timeout(self):
        from config.settings import base

        timeout = base.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
        assert timeout >= base.NOTIFICATION_RETRY_BACKOFF_MAX * 4
