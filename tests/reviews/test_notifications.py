"""The email outbox services: send, fail, resend, delivery webhooks, sweeper.

Only the email provider is replaced (ESP backends below, built on anymail's test
backend); tasks run eagerly after commit as in the embedded mode.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from datetime import timedelta
from http import HTTPStatus

import pytest
import requests
from anymail.backends import test as anymail_test
from anymail.exceptions import (
    AnymailAPIError,
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
    AnymailRequestsAPIError,
)
from django.core.mail import BadHeaderError
from django.db import transaction
from django.utils import timezone

from accounts.models import DeveloperAccount
from reviews import audit, services
from reviews.errors import ActionRefused, PermissionRefused
from reviews.models import ApiKey, CaseEvent, Notification, ReviewCase
from tests.factories import approve_case, deny_case, make_account, make_case

HERE = "tests.reviews.test_notifications"


# --- the email provider, replaced ---------------------------------------------------


def provider_error(status: int, body: dict | None = None, *, message=None):
    """What anymail raises when the ESP's API answers ``status``."""
    response = requests.Response()
    response.status_code = status
    response.reason = HTTPStatus(status).phrase
    response._content = json.dumps(body or {"ErrorCode": 0}).encode()
    response.headers["Content-Type"] = "application/json"
    return AnymailRequestsAPIError(
        email_message=message, response=response, esp_name="Postmark"
    )


def network_error(kind: type[requests.RequestException], *, message=None):
    """What anymail raises when the ESP cannot be reached (see base_requests)."""
    error_class = type("AnymailRequestsAPIError", (AnymailRequestsAPIError, kind), {})
    try:
        raise kind("connection to api.postmarkapp.com failed")
    except kind as cause:
        error = error_class("Error posting to https://api.postmarkapp.com/email:")
        error.__cause__ = cause
        return error


class ScriptedEsp(anymail_test.EmailBackend):
    """anymail's test ESP that raises the queued errors first, then sends.

    Message ids look like Postmark's (UUIDs), as tracking webhooks carry them.
    """

    errors: list[Exception] = []
    calls = 0

    def post_to_esp(self, payload, message):
        type(self).calls += 1
        if type(self).errors:
            raise type(self).errors.pop(0)
        return super().post_to_esp(payload, message)

    def get_esp_message_id(self, message):
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"msg/{id(message)}"))


@pytest.fixture
def esp(settings):
    ScriptedEsp.errors = []
    ScriptedEsp.calls = 0
    settings.EMAIL_BACKEND = f"{HERE}.ScriptedEsp"
    return ScriptedEsp


def events(notification: Notification, code: str) -> list[CaseEvent]:
    return list(
        CaseEvent.objects.filter(case_id=notification.case_id, code=code).order_by("pk")
    )


def approved_and_sent(reviewer, capture, **account) -> Notification:
    """Approve a case; the after-commit task sends its email (eagerly)."""
    case = make_case(account=make_account(**account)) if account else make_case()
    with capture(execute=True):
        approve_case(case, reviewer)
    return Notification.objects.get(case=case)


# --- sending ----------------------------------------------------------------------


@pytest.mark.django_db
class TestNotificationSend:
    def test_sends_once_and_records_everything(
        self, reviewer, outbox, esp, django_capture_on_commit_callbacks
    ):
        notification = approved_and_sent(reviewer, django_capture_on_commit_callbacks)

        assert len(outbox) == 1
        notification.refresh_from_db()
        assert notification.status == Notification.Status.SENT
        assert notification.attempts == 1
        assert notification.times_sent == 1
        assert notification.sent_at is not None
        assert notification.last_error == ""
        message = outbox[0]
        assert notification.provider_message_id == str(
            message.anymail_status.message_id
        )
        assert notification.subject == message.subject
        assert notification.body_text == message.body
        assert notification.body_html == message.alternatives[0][0]
        (sent,) = events(notification, audit.EMAIL_SENT)
        assert sent.actor_kind == CaseEvent.ActorKind.SYSTEM
        assert sent.payload["provider_message_id"] == notification.provider_message_id
        assert sent.payload["notification"] == notification.pk

        # The task delivered twice (redelivery, sweeper): nothing more is sent.
        assert services.notification_send(notification_id=notification.pk) is None
        assert len(outbox) == 1
        notification.refresh_from_db()
        assert (notification.times_sent, notification.attempts) == (1, 1)
        assert len(events(notification, audit.EMAIL_SENT)) == 1

    def test_denial_is_sent_to_the_contact(
        self, reviewer, outbox, esp, django_capture_on_commit_callbacks
    ):
        case = make_case(
            account=make_account(
                contact_name="José Müller-Ørsted",
                contact_email="jose.muller@bücher.example",
            )
        )
        with django_capture_on_commit_callbacks(execute=True):
            deny_case(case, reviewer)
        (message,) = outbox
        assert message.anymail_test_params["to"][0].addr_spec == (
            "jose.muller@bücher.example"
        )
        assert case.reference in message.subject
        assert Notification.objects.get(case=case).status == Notification.Status.SENT

    def test_unknown_notification_is_skipped(self, db, outbox):
        assert services.notification_send(notification_id=987654) is None
        assert outbox == []

    @pytest.mark.parametrize(
        "error",
        [
            provider_error(422, {"ErrorCode": 300, "Message": "Invalid 'To' address"}),
            provider_error(401, {"ErrorCode": 10, "Message": "Bad or missing token"}),
            AnymailRecipientsRefused(),
            AnymailInvalidAddress("Invalid email address 'x'"),
            BadHeaderError("Header values can't contain newlines"),
            AnymailAPIError("Unparsable test response"),
        ],
        ids=[
            "422",
            "401",
            "recipients-refused",
            "invalid-address",
            "bad-header",
            "api",
        ],
    )
    def test_permanent_error_fails_without_retry(
        self, reviewer, outbox, esp, django_capture_on_commit_callbacks, error
    ):
        esp.errors = [error]
        notification = approved_and_sent(reviewer, django_capture_on_commit_callbacks)

        assert esp.calls == 1  # no retry
        assert outbox == []
        notification.refresh_from_db()
        assert notification.status == Notification.Status.FAILED
        assert notification.attempts == 1
        assert notification.times_sent == 0
        assert type(error).__name__ in notification.last_error
        assert notification.subject  # the admin still shows what was to be sent
        (failed,) = events(notification, audit.EMAIL_FAILED)
        assert failed.payload["error"] == notification.last_error[:500]
        assert events(notification, audit.EMAIL_SENT) == []

    def test_422_error_text_is_visible(
        self, reviewer, outbox, esp, django_capture_on_commit_callbacks
    ):
        esp.errors = [provider_error(422, {"ErrorCode": 406, "Message": "Inactive"})]
        notification = approved_and_sent(reviewer, django_capture_on_commit_callbacks)
        notification.refresh_from_db()
        assert "422" in notification.last_error
        assert "Inactive" in notification.last_error

    def test_unusable_stored_address_fails_with_a_clear_error(
        self, reviewer, outbox, esp, django_capture_on_commit_callbacks
    ):
        notification = approved_and_sent(
            reviewer, django_capture_on_commit_callbacks, contact_email="not-an-email"
        )
        notification.refresh_from_db()
        assert notification.status == Notification.Status.FAILED
        assert "correct the partner's contact email" in notification.last_error
        assert esp.calls == 0

    @pytest.mark.parametrize(
        "error",
        [
            provider_error(503),
            provider_error(500),
            provider_error(429, {"ErrorCode": 429, "Message": "Rate limit"}),
            network_error(requests.ConnectionError),
            network_error(requests.Timeout),
            ConnectionResetError("reset by peer"),
        ],
        ids=["503", "500", "429", "connection", "timeout", "socket"],
    )
    def test_transient_error_is_recorded_and_raised(self, reviewer, esp, outbox, error):
        case = make_case()
        approve_case(case, reviewer)  # test transaction: the task is not run
        notification = Notification.objects.get(case=case)
        esp.errors = [error]

        with pytest.raises(services.TransientEmailError) as raised:
            services.notification_send(notification_id=notification.pk)

        assert raised.value.notification_id == notification.pk
        notification.refresh_from_db()
        assert notification.status == Notification.Status.PENDING
        assert notification.attempts == 1
        assert type(error).__name__ in notification.last_error
        (retrying,) = events(notification, audit.EMAIL_RETRYING)
        assert retrying.payload["attempt"] == 1

        # The next try succeeds and clears the error.
        services.notification_send(notification_id=notification.pk)
        notification.refresh_from_db()
        assert notification.status == Notification.Status.SENT
        assert (notification.attempts, notification.times_sent) == (2, 1)
        assert notification.last_error == ""
        assert len(outbox) == 1


@pytest.mark.django_db
class TestEmbeddedMode:
    def test_the_email_is_captured_in_a_file(
        self, reviewer, settings, tmp_path, django_capture_on_commit_callbacks
    ):
        """No ESP (``make run``): Django's file backend under var/mail."""
        settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
        settings.EMAIL_FILE_PATH = tmp_path
        notification = approved_and_sent(reviewer, django_capture_on_commit_callbacks)

        notification.refresh_from_db()
        assert notification.status == Notification.Status.SENT
        assert notification.provider_message_id == ""  # no ESP, no tracking
        (written,) = tmp_path.iterdir()
        content = written.read_bytes()
        assert notification.case.reference.encode() in content
        assert b"Content-Type: text/html" in content
        assert notification.to_email.encode() in content


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class TestTransientFailureThroughTheTask:
    """Eager task (embedded mode): the retry runs at once, in this process."""

    def test_a_retried_send_sees_the_committed_first_attempt(
        self, reviewer, outbox, esp
    ):
        esp.errors = [provider_error(503)]
        case = make_case()
        approve_case(case, reviewer)  # commits; the send task runs after commit

        notification = Notification.objects.get(case=case)
        assert esp.calls == 2
        assert notification.status == Notification.Status.SENT
        # attempt 1 was committed before TransientEmailError reached the task
        assert (notification.attempts, notification.times_sent) == (2, 1)
        assert [e.code for e in CaseEvent.objects.filter(case=case)].count(
            audit.EMAIL_RETRYING
        ) == 1
        assert len(outbox) == 1

    def test_exhausted_retries_end_failed(self, reviewer, outbox, esp, settings):
        settings.NOTIFICATION_MAX_RETRIES = 2
        esp.errors = [provider_error(503) for _ in range(5)]
        case = make_case()
        approve_case(case, reviewer)

        notification = Notification.objects.get(case=case)
        assert esp.calls == 3
        assert notification.status == Notification.Status.FAILED
        assert notification.attempts == 3
        assert notification.last_error.startswith("Gave up after 3 tries:")
        assert "503" in notification.last_error
        (failed,) = events(notification, audit.EMAIL_FAILED)
        assert failed.payload["gave_up"] is True
        assert outbox == []


class TestTransientClassification:
    @pytest.mark.parametrize(
        ("error", "transient"),
        [
            (provider_error(500), True),
            (provider_error(502), True),
            (provider_error(503), True),
            (provider_error(429), True),
            (provider_error(408), True),
            (provider_error(400), False),
            (provider_error(401), False),
            (provider_error(404), False),
            (provider_error(422), False),
            (provider_error(200), False),  # garbled success: probably sent
            (network_error(requests.ConnectionError), True),
            (network_error(requests.Timeout), True),
            (AnymailRecipientsRefused(), False),
            (AnymailInvalidAddress("bad"), False),
            (AnymailAPIError("no status"), False),
            (BadHeaderError("newline"), False),
            (TimeoutError(), True),
            (ConnectionRefusedError(), True),
            (ValueError("template"), False),
        ],
    )
    def test_classification(self, error, transient):
        assert services.is_transient_email_error(error) is transient


# --- nothing before commit ----------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class TestOnlyAfterCommit:
    def test_nothing_reaches_the_backend_before_commit(self, reviewer, outbox):
        case = make_case()
        with transaction.atomic():
            approve_case(case, reviewer)
            notification = Notification.objects.get(case=case)
            assert notification.status == Notification.Status.PENDING
            assert outbox == []
        assert len(outbox) == 1
        notification.refresh_from_db()
        assert notification.status == Notification.Status.SENT

    def test_a_rolled_back_decision_sends_nothing(self, reviewer, outbox):
        case = make_case()
        services.review_case_claim(actor=reviewer, case_id=case.pk)
        with pytest.raises(RuntimeError, match="boom"), transaction.atomic():
            approve_case(case, reviewer)
            raise RuntimeError("boom")
        assert outbox == []
        assert not Notification.objects.filter(case=case).exists()
        case.refresh_from_db()
        assert case.state == ReviewCase.State.IN_REVIEW
        assert case.key.status == ApiKey.Status.PENDING_APPROVAL


@pytest.mark.django_db
class TestOnCommitCallbacks:
    def test_the_send_is_an_on_commit_callback(
        self, reviewer, outbox, django_capture_on_commit_callbacks
    ):
        case = make_case()
        with django_capture_on_commit_callbacks() as callbacks:
            approve_case(case, reviewer)
        # The decision is written, the send only scheduled for after commit.
        assert outbox == []
        assert Notification.objects.get(case=case).status == "pending"
        assert len(callbacks) == 1
        callbacks[0]()
        assert len(outbox) == 1
        assert Notification.objects.get(case=case).status == "sent"


# --- giving up ----------------------------------------------------------------------


@pytest.mark.django_db
class TestNotificationMarkFailed:
    def test_marks_a_pending_notification_failed(self, reviewer):
        case = make_case()
        approve_case(case, reviewer)
        notification = Notification.objects.get(case=case)
        services.notification_mark_failed(
            notification_id=notification.pk, error="Gave up after 6 tries: 503"
        )
        notification.refresh_from_db()
        assert notification.status == Notification.Status.FAILED
        assert notification.last_error == "Gave up after 6 tries: 503"
        (failed,) = events(notification, audit.EMAIL_FAILED)
        assert failed.payload["gave_up"] is True

    def test_leaves_a_sent_notification_alone(
        self, reviewer, outbox, django_capture_on_commit_callbacks
    ):
        notification = approved_and_sent(reviewer, django_capture_on_commit_callbacks)
        services.notification_mark_failed(notification_id=notification.pk, error="x")
        notification.refresh_from_db()
        assert notification.status == Notification.Status.SENT
        assert events(notification, audit.EMAIL_FAILED) == []


# --- resending ----------------------------------------------------------------------


@pytest.mark.django_db
class TestNotificationResend:
    def test_support_resends_a_sent_email(
        self, reviewer, support, outbox, django_capture_on_commit_callbacks
    ):
        notification = approved_and_sent(reviewer, django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=True):
            returned = services.notification_resend(
                actor=support, notification_id=notification.pk
            )
        assert returned.pk == notification.pk
        assert len(outbox) == 2
        notification.refresh_from_db()
        assert notification.status == Notification.Status.SENT
        assert notification.times_sent == 2
        (requested,) = events(notification, audit.EMAIL_RESEND_REQUESTED)
        assert requested.actor == support
        assert requested.payload["previous_status"] == "sent"
        assert len(events(notification, audit.EMAIL_SENT)) == 2

    def test_support_resends_a_failed_email(
        self, reviewer, support, outbox, esp, django_capture_on_commit_callbacks
    ):
        esp.errors = [provider_error(422)]
        notification = approved_and_sent(reviewer, django_capture_on_commit_callbacks)
        notification.refresh_from_db()
        assert notification.status == Notification.Status.FAILED
        with django_capture_on_commit_callbacks(execute=True):
            services.notification_resend(actor=support, notification_id=notification.pk)
        notification.refresh_from_db()
        assert notification.status == Notification.Status.SENT
        assert notification.last_error == ""
        assert notification.attempts == 1
        assert len(outbox) == 1

    def test_a_reviewer_may_not_resend(
        self, reviewer, outbox, django_capture_on_commit_callbacks
    ):
        notification = approved_and_sent(reviewer, django_capture_on_commit_callbacks)
        before = Notification.objects.filter(pk=notification.pk).values().get()
        event_count = CaseEvent.objects.count()

        refused = pytest.raises(PermissionRefused, match="does not allow you to resend")
        with django_capture_on_commit_callbacks(execute=True), refused:
            services.notification_resend(
                actor=reviewer, notification_id=notification.pk
            )

        assert Notification.objects.filter(pk=notification.pk).values().get() == before
        assert CaseEvent.objects.count() == event_count
        assert len(outbox) == 1

    def test_refused_while_pending(self, reviewer, support, outbox):
        case = make_case()
        approve_case(case, reviewer)  # test transaction: still pending
        notification = Notification.objects.get(case=case)
        with pytest.raises(ActionRefused, match="still waiting to be sent") as refused:
            services.notification_resend(actor=support, notification_id=notification.pk)
        assert refused.value.code == "pending"
        assert events(notification, audit.EMAIL_RESEND_REQUESTED) == []

    def test_goes_to_the_current_contact_after_an_account_change(
        self, reviewer, support, outbox, django_capture_on_commit_callbacks
    ):
        notification = approved_and_sent(
            reviewer,
            django_capture_on_commit_callbacks,
            contact_email="old@partner.example",
            contact_name="Old Contact",
        )
        assert outbox[0].to == ["Old Contact <old@partner.example>"]
        DeveloperAccount.objects.filter(pk=notification.case.account_id).update(
            contact_email="nueva@bücher.example", contact_name="Núria Nova"
        )

        with django_capture_on_commit_callbacks(execute=True):
            services.notification_resend(actor=support, notification_id=notification.pk)

        notification.refresh_from_db()
        assert notification.to_email == "nueva@bücher.example"
        assert notification.to_name == "Núria Nova"
        assert outbox[1].to == ["Núria Nova <nueva@bücher.example>"]
        assert b"nueva@xn--bcher-kva.example" in outbox[1].message().as_bytes()
        (requested,) = events(notification, audit.EMAIL_RESEND_REQUESTED)
        assert requested.payload["previous_to"] == "old@partner.example"
        assert requested.payload["to"] == "nueva@bücher.example"


# --- delivery status from the ESP's webhooks ------------------------------------------

WEBHOOK_SECRET = "anymail-hook:Sx9r2-q8T4"
TRACKING_URL = "/anymail/postmark/tracking/"


def postmark_delivery(message_id: str, delivered_at: str) -> dict:
    """A Postmark Delivery webhook, as documented by Postmark."""
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": message_id,
        "Recipient": "dev@partner.example",
        "Tag": "approval",
        "DeliveredAt": delivered_at,
        "Details": "smtp;250 2.0.0 OK  1573058034 d11si1529339ywj.82 - gsmtp",
        "Metadata": {"notification_id": "1", "case": "RC-000001"},
    }


def postmark_bounce(message_id: str, bounced_at: str) -> dict:
    """A Postmark Bounce webhook (hard bounce), as documented by Postmark."""
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "approval",
        "MessageID": message_id,
        "Metadata": {"notification_id": "1", "case": "RC-000001"},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message "
        "(ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach "
        "does not exist.",
        "Email": "dev@partner.example",
        "From": "no-reply@reviewdesk.example",
        "BouncedAt": bounced_at,
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Your production API key is active",
        "Content": "",
    }


@pytest.fixture
def webhook_secret(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": WEBHOOK_SECRET}
    return WEBHOOK_SECRET


def post_tracking(client, payload: dict, auth: str = WEBHOOK_SECRET):
    token = base64.b64encode(auth.encode()).decode()
    return client.post(
        TRACKING_URL,
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {token}",
    )


@pytest.mark.django_db
class TestDeliveryWebhook:
    def test_postmark_events_update_the_delivery_status(
        self,
        client,
        reviewer,
        outbox,
        esp,
        webhook_secret,
        django_capture_on_commit_callbacks,
    ):
        notification = approved_and_sent(reviewer, django_capture_on_commit_callbacks)
        message_id = notification.provider_message_id
        assert message_id

        delivered = post_tracking(
            client, postmark_delivery(message_id, "2026-11-30T10:00:05.9070259Z")
        )
        assert delivered.status_code == 200
        notification.refresh_from_db()
        assert notification.delivery_status == "delivered"
        assert notification.delivery_status_at.isoformat().startswith(
            "2026-11-30T10:00:05"
        )
        (event,) = events(notification, audit.EMAIL_DELIVERY)
        assert event.payload["event"] == "delivered"
        assert "250 2.0.0 OK" in event.payload["detail"]

        bounced = post_tracking(
            client, postmark_bounce(message_id, "2026-11-30T10:05:00Z")
        )
        assert bounced.status_code == 200
        notification.refresh_from_db()
        assert notification.delivery_status == "bounced"
        assert (
            "550 5.1.1"
            in events(notification, audit.EMAIL_DELIVERY)[-1].payload["detail"]
        )

        # A late, older event (webhooks arrive out of order) changes nothing.
        late = post_tracking(
            client, postmark_delivery(message_id, "2026-11-30T10:01:00Z")
        )
        assert late.status_code == 200
        notification.refresh_from_db()
        assert notification.delivery_status == "bounced"
        assert len(events(notification, audit.EMAIL_DELIVERY)) == 2

    def test_wrong_basic_auth_is_rejected(
        self,
        client,
        reviewer,
        outbox,
        esp,
        webhook_secret,
        django_capture_on_commit_callbacks,
    ):
        notification = approved_and_sent(reviewer, django_capture_on_commit_callbacks)
        response = post_tracking(
            client,
            postmark_delivery(notification.provider_message_id, "2026-11-30T10:00Z"),
            auth="anymail-hook:wrong",
        )
        assert response.status_code == 400
        notification.refresh_from_db()
        assert notification.delivery_status == ""
        assert events(notification, audit.EMAIL_DELIVERY) == []

    def test_unknown_message_id_is_ignored_and_logged(
        self, client, db, webhook_secret, caplog
    ):
        unknown = "883953f4-6105-42a2-a16a-77a8eac79483"
        with caplog.at_level(logging.INFO, logger="reviews.services.notifications"):
            response = post_tracking(
                client, postmark_delivery(unknown, "2026-11-30T10:00:00Z")
            )
        assert response.status_code == 200
        assert unknown in caplog.text
        assert not CaseEvent.objects.filter(code=audit.EMAIL_DELIVERY).exists()


@pytest.mark.django_db
class TestNotificationRecordDelivery:
    def test_newer_events_win_older_ones_are_ignored(
        self, reviewer, outbox, esp, django_capture_on_commit_callbacks
    ):
        notification = approved_and_sent(reviewer, django_capture_on_commit_callbacks)
        t0 = timezone.now()
        record = services.notification_record_delivery
        message_id = notification.provider_message_id

        assert record(
            provider_message_id=message_id,
            event_type="deferred",
            occurred_at=t0,
            detail="greylisted",
        )
        assert record(
            provider_message_id=message_id,
            event_type="delivered",
            occurred_at=t0 + timedelta(minutes=5),
        )
        assert (
            record(
                provider_message_id=message_id,
                event_type="deferred",
                occurred_at=t0 + timedelta(minutes=1),
            )
            is None
        )
        assert record(
            provider_message_id=message_id,
            event_type="opened",
            occurred_at=t0 + timedelta(hours=1),
        )
        notification.refresh_from_db()
        assert notification.delivery_status == "opened"
        assert [
            e.payload["event"] for e in events(notification, audit.EMAIL_DELIVERY)
        ] == [
            "deferred",
            "delivered",
            "opened",
        ]

    def test_resend_forgets_the_old_message(
        self, reviewer, support, outbox, esp, django_capture_on_commit_callbacks
    ):
        notification = approved_and_sent(reviewer, django_capture_on_commit_callbacks)
        old_id = notification.provider_message_id
        services.notification_record_delivery(
            provider_message_id=old_id,
            event_type="bounced",
            occurred_at=timezone.now(),
        )
        with django_capture_on_commit_callbacks(execute=True):
            services.notification_resend(actor=support, notification_id=notification.pk)
        notification.refresh_from_db()
        assert notification.delivery_status == ""
        assert notification.provider_message_id not in ("", old_id)
        # A late event about the old message no longer touches this row.
        assert (
            services.notification_record_delivery(
                provider_message_id=old_id,
                event_type="delivered",
                occurred_at=timezone.now(),
            )
            is None
        )


# --- the sweeper ---------------------------------------------------------------------


@pytest.mark.django_db
class TestNotificationsSendPending:
    def lost(self, reviewer) -> Notification:
        """A decision whose after-commit dispatch never happened."""
        case = make_case()
        approve_case(case, reviewer)  # test transaction: no on_commit
        return Notification.objects.get(case=case)

    def test_sends_pending_notifications_after_the_delay(
        self, reviewer, outbox, settings, django_capture_on_commit_callbacks
    ):
        settings.NOTIFICATION_SWEEP_AFTER = timedelta(minutes=2)
        notification = self.lost(reviewer)
        soon = notification.created_at + timedelta(minutes=1)
        later = notification.created_at + timedelta(minutes=3)

        with django_capture_on_commit_callbacks(execute=True):
            assert services.notifications_send_pending(now=soon) == []
        assert outbox == []

        with django_capture_on_commit_callbacks(execute=True):
            assert services.notifications_send_pending(now=later) == [notification.pk]
        assert len(outbox) == 1
        notification.refresh_from_db()
        assert notification.status == Notification.Status.SENT

    def test_leaves_sent_failed_and_retrying_rows_alone(
        self, reviewer, outbox, esp, settings, django_capture_on_commit_callbacks
    ):
        settings.NOTIFICATION_SWEEP_AFTER = timedelta(minutes=2)
        settings.NOTIFICATION_RETRY_BACKOFF_MAX = 300
        sent = approved_and_sent(reviewer, django_capture_on_commit_callbacks)
        esp.errors = [provider_error(422)]
        failed = approved_and_sent(reviewer, django_capture_on_commit_callbacks)
        retrying = self.lost(reviewer)
        esp.errors = [provider_error(503)]
        with pytest.raises(services.TransientEmailError):
            services.notification_send(notification_id=retrying.pk)
        retrying.refresh_from_db()

        # Three minutes on: a retry may still be waiting out its backoff.
        three_minutes = retrying.updated_at + timedelta(minutes=3)
        with django_capture_on_commit_callbacks(execute=True):
            assert services.notifications_send_pending(now=three_minutes) == []
        # Past sweep delay + longest backoff, the retry chain is presumed lost.
        eight_minutes = retrying.updated_at + timedelta(minutes=8)
        with django_capture_on_commit_callbacks(execute=True):
            assert services.notifications_send_pending(now=eight_minutes) == [
                retrying.pk
            ]
        statuses = dict(
            Notification.objects.filter(
                pk__in=[sent.pk, failed.pk, retrying.pk]
            ).values_list("pk", "status")
        )
        assert statuses == {sent.pk: "sent", failed.pk: "failed", retrying.pk: "sent"}

    def test_a_swept_row_is_not_queued_again_by_the_next_sweep(
        self, reviewer, settings, django_capture_on_commit_callbacks
    ):
        settings.NOTIFICATION_SWEEP_AFTER = timedelta(minutes=2)
        notification = self.lost(reviewer)
        first = notification.created_at + timedelta(minutes=3)
        with django_capture_on_commit_callbacks() as queued:
            assert services.notifications_send_pending(now=first) == [notification.pk]
        assert len(queued) == 1
        # The worker is busy; the next sweep a minute later must not pile on.
        with django_capture_on_commit_callbacks() as queued_again:
            assert (
                services.notifications_send_pending(now=first + timedelta(minutes=1))
                == []
            )
        assert queued_again == []
