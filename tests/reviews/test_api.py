"""The platform API over HTTP (DESIGN §6), driven with Django's test client.

Events are signed with the Standard Webhooks library exactly as the platform
signs them; the samples (../shared/samples/platform-events.jsonl, copied into
reviews/fixtures/) are replayed
in order and each must give the outcome its ``expect`` says.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test import Client
from standardwebhooks import Webhook

from accounts.models import DeveloperAccount, DeveloperAccountEmail
from reviews.models import (
    ApiKey,
    CaseEvent,
    CheckResult,
    Notification,
    PlatformEventReceipt,
    ReviewCase,
)
from tests.factories import approve_case, deny_case

pytestmark = pytest.mark.django_db

EVENTS_URL = "/api/v1/platform-events"
SAMPLES_PATH = settings.BASE_DIR / "reviews" / "fixtures" / "platform-events.jsonl"
SHARED_SAMPLES = (
    settings.BASE_DIR.parent / "shared" / "samples" / "platform-events.jsonl"
)
SAMPLES = [
    json.loads(line)
    for line in SAMPLES_PATH.read_text(encoding="utf-8").splitlines()
    if line.strip()
]
PROBLEM = "application/problem+json"


def sample(note_start: str) -> dict:
    """A copy of the sample event whose note starts with ``note_start``."""
    [found] = [line for line in SAMPLES if line["note"].startswith(note_start)]
    return copy.deepcopy(found["event"])


def body_of(event) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


def signed_headers(body: bytes, *, webhook_id=None, at=None, secret=None) -> dict:
    at = at or datetime.now(UTC)
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    signature = Webhook(secret or settings.PLATFORM_WEBHOOK_SECRET).sign(
        webhook_id, at, body.decode()
    )
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def deliver(client, event, *, headers=None, **signing):
    """POST ``event`` (a dict, or raw bytes) signed like the platform does."""
    body = event if isinstance(event, bytes) else body_of(event)
    if headers is None:
        headers = signed_headers(body, **signing)
    return client.post(
        EVENTS_URL, data=body, content_type="application/json", headers=headers
    )


def counts() -> dict[str, int]:
    """Rows of everything an event could write (receipts counted apart)."""
    models = [
        DeveloperAccount,
        DeveloperAccountEmail,
        ApiKey,
        ReviewCase,
        CheckResult,
        CaseEvent,
        Notification,
    ]
    return {model.__name__: model.objects.count() for model in models}


def fields_named(response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    document = response.json()
    assert document["status"] == status
    assert document["type"].startswith("https://")
    assert document["title"] and document["detail"]
    return document


def key(key_id: str) -> ApiKey:
    return ApiKey.objects.get(platform_key_id=key_id)


# --- the samples, in order ------------------------------------------------------------


class TestSamplesReplayedInOrder:
    def test_each_sample_gives_the_outcome_its_expect_says(self, client):
        answers = {}
        for line in SAMPLES:
            before = counts()
            receipts = PlatformEventReceipt.objects.count()
            response = deliver(client, line["event"])
            answers[line["note"]] = (response, before)
            # Every validly signed delivery leaves exactly one receipt with its answer.
            assert PlatformEventReceipt.objects.count() == receipts + 1
            receipt = PlatformEventReceipt.objects.latest("id")
            assert receipt.response_status == response.status_code
            assert receipt.response_body == response.json()

        def answer(note_start):
            [found] = [v for k, v in answers.items() if k.startswith(note_start)]
            return found

        # 1. plain partner: 202, case with the 4 core checks, key pending approval.
        response, _ = answer("plain partner")
        assert response.status_code == 202
        assert response["Content-Type"] == "application/json"
        first = ReviewCase.objects.get(key__platform_key_id="pk_1001_a", attempt=1)
        assert response.json() == {
            "case": first.reference,
            "key": {"id": "pk_1001_a", "status": "pending_approval"},
        }
        assert first.checks.count() == 4
        assert first.state == ReviewCase.State.QUEUED
        assert first.previous_case is None
        assert first.wants_affiliate is False
        assert first.integration == {
            "app_name": "Pantry Planner",
            "app_url": "https://pantry-planner.example",
            "endpoints": ["products_link"],
        }
        assert key("pk_1001_a").status == ApiKey.Status.PENDING_APPROVAL
        assert key("pk_1001_a").last4 == "9f2c"
        partner = DeveloperAccount.objects.get(platform_account_id="acct_1001")
        assert partner.help_desk_account_id == "HD-55001"
        assert partner.contact_name == "Sam Rivera"

        # 2. affiliate partner: 6 checks.
        response, _ = answer("affiliate partner")
        assert response.status_code == 202
        affiliate_case = ReviewCase.objects.get(key__platform_key_id="pk_1002_a")
        assert CheckResult.objects.filter(case=affiliate_case).count() == 6
        assert affiliate_case.wants_affiliate is True
        weeknight = DeveloperAccount.objects.get(platform_account_id="acct_1002")
        assert (weeknight.tastemakers_account_id, weeknight.affiliate_partner_id) == (
            "TM-7781",
            "5928554",
        )

        # 3. non-ASCII names and an internationalised email domain, stored exactly.
        response, _ = answer("non-ASCII")
        assert response.status_code == 202
        cafe = DeveloperAccount.objects.get(platform_account_id="acct_1003")
        assert cafe.name == "Café Ñandú Recetas S.A."
        assert cafe.contact_name == "José Müller-Ørsted"
        assert cafe.contact_email == "jose.muller@bücher.example"
        assert key("pk_1003_a").name == "Producción"

        # 4. markup in partner-supplied fields: valid, stored verbatim.
        response, _ = answer("markup")
        assert response.status_code == 202
        bold = DeveloperAccount.objects.get(platform_account_id="acct_1004")
        assert bold.name == "<b>Bold</b> Foods <script>alert('x')</script>"
        assert bold.contact_name == '"Quote" O\'Brien'
        assert key("pk_1004_a").name == "<img src=x onerror=alert(1)>"

        # 5. same key again while its first case is open: no second case.
        response, before = answer("same key requested again")
        assert response.status_code == 200
        assert response.json() == {
            "case": first.reference,
            "key": {"id": "pk_1001_a", "status": "pending_approval"},
            "detail": f"A review is already open for this key ({first.reference}); "
            "no new case was opened.",
        }
        assert ReviewCase.objects.filter(key__platform_key_id="pk_1001_a").count() == 1

        # 6. a new key from the same partner (its first key is not denied yet).
        response, _ = answer("new key from a partner")
        assert response.status_code == 202
        second_key_case = ReviewCase.objects.get(key__platform_key_id="pk_1001_b")
        assert response.json()["case"] == second_key_case.reference
        assert second_key_case.attempt == 1
        assert second_key_case.previous_case is None  # nothing denied to link to

        # 7. key deleted under review: case and key withdrawn, no email.
        response, _ = answer("partner deleted the key")
        assert response.status_code == 200
        affiliate_case.refresh_from_db()
        assert affiliate_case.state == ReviewCase.State.WITHDRAWN
        assert response.json()["key"] == {"id": "pk_1002_a", "status": "withdrawn"}
        assert response.json()["case"] == affiliate_case.reference
        assert key("pk_1002_a").status == ApiKey.Status.WITHDRAWN
        assert not Notification.objects.filter(case=affiliate_case).exists()
        assert affiliate_case.events.filter(
            code="reviews.case.withdrawn", actor_kind="platform"
        ).exists()

        # 8. contact email changed: later emails go to the new address; support
        # finds the partner by the old one and the new one.
        response, _ = answer("contact email changed")
        assert response.status_code == 200
        assert response.json() == {
            "account": {
                "id": "acct_1002",
                "created": False,
                "changed": ["contact_email"],
            }
        }
        weeknight.refresh_from_db()
        assert weeknight.contact_email == "platform-team@weeknight.example"
        assert set(weeknight.emails.values_list("email", flat=True)) == {
            "api@weeknight.example",
            "platform-team@weeknight.example",
        }
        # Fields the update left out keep their values (patch semantics).
        assert weeknight.wants_affiliate is True
        assert weeknight.help_desk_account_id == "HD-55002"
        updated = CaseEvent.objects.get(
            account=weeknight, code="accounts.account.updated"
        )
        assert updated.payload["fields"] == ["contact_email"]

        # 9-13. bad events: problem documents naming the exact fields, nothing stored.
        expected_problems = {
            "bad: account id missing": (400, ["data.account.id"]),
            "bad: contact email invalid": (400, ["data.account.contact_email"]),
            "bad: unknown event type": (422, ["type"]),
            "bad: line break in a name": (400, ["data.account.name", "data.key.name"]),
            "bad: wrong JSON types": (
                400,
                ["data.account.id", "data.account.name", "data.key.id"],
            ),
        }
        for note, (status, fields) in expected_problems.items():
            response, before = answer(note)
            assert_problem(response, status)
            assert fields_named(response) == fields, note
            assert counts() == before, f"{note}: something was stored"
        for account_id in ("acct_1005", "acct_1006"):
            assert not DeveloperAccount.objects.filter(
                platform_account_id=account_id
            ).exists()
        assert not ApiKey.objects.filter(
            platform_key_id__in=["pk_x", "pk_1005_a", "pk_1006_a"]
        ).exists()
        assert ReviewCase.objects.count() == 5

    def test_problem_details_say_what_is_wrong(self, client):
        missing = deliver(client, sample("bad: account id missing"))
        assert missing.json()["errors"] == [
            {"field": "data.account.id", "detail": "This field is required."}
        ]
        types = deliver(client, sample("bad: wrong JSON types")).json()["errors"]
        assert [error["detail"] for error in types] == [
            "Must be a string, not a number.",
            "Must be a string, not an array.",
            "Must be a string, not null.",
        ]
        line_break = deliver(client, sample("bad: line break")).json()["errors"]
        assert "U+000D" in line_break[0]["detail"]
        assert "single line" in line_break[0]["detail"]
        unknown = deliver(client, sample("bad: unknown event type")).json()
        assert "production_key.exploded" in unknown["detail"]
        assert "production_key.requested" in unknown["detail"]


class TestResubmission:
    def test_denied_key_requested_again_opens_attempt_2_linked(self, client, reviewer):
        deliver(client, sample("plain partner"))
        denied = ReviewCase.objects.get(key__platform_key_id="pk_1001_a")
        deny_case(denied, reviewer, detail="400s with code 1001 on /products_link")
        assert key("pk_1001_a").status == ApiKey.Status.DENIED

        response = deliver(client, sample("same key requested again"))

        assert response.status_code == 202
        again = ReviewCase.objects.get(key__platform_key_id="pk_1001_a", attempt=2)
        assert response.json() == {
            "case": again.reference,
            "key": {"id": "pk_1001_a", "status": "pending_approval"},
        }
        assert again.previous_case_id == denied.pk
        assert again.state == ReviewCase.State.QUEUED
        assert again.checks.count() == 4
        assert key("pk_1001_a").status == ApiKey.Status.PENDING_APPROVAL
        assert again.events.filter(code="reviews.case.resubmitted").exists()
        assert denied.events.filter(
            code="reviews.key.resubmitted",
            from_state="denied",
            to_state="pending_approval",
        ).exists()

    def test_new_key_after_a_denial_links_to_the_denied_case(self, client, reviewer):
        deliver(client, sample("plain partner"))
        denied = deny_case(
            ReviewCase.objects.get(key__platform_key_id="pk_1001_a"), reviewer
        )

        response = deliver(client, sample("new key from a partner"))

        assert response.status_code == 202
        new_case = ReviewCase.objects.get(key__platform_key_id="pk_1001_b")
        assert new_case.previous_case_id == denied.pk
        assert new_case.attempt == 1

    def test_approved_key_requested_again_is_a_conflict(self, client, reviewer):
        deliver(client, sample("plain partner"))
        approve_case(ReviewCase.objects.get(key__platform_key_id="pk_1001_a"), reviewer)
        before = counts()

        response = deliver(client, sample("same key requested again"))

        document = assert_problem(response, 409)
        assert "active" in document["detail"]
        assert fields_named(response) == ["data.key.id"]
        assert document["key"] == {"id": "pk_1001_a", "status": "active"}
        assert counts() == before


# --- signatures -----------------------------------------------------------------------


class TestSignature:
    event = sample("plain partner")

    def assert_refused(self, response, words: str) -> None:
        document = assert_problem(response, 401)
        assert words in document["detail"]
        assert response["WWW-Authenticate"]
        assert PlatformEventReceipt.objects.count() == 0
        assert ReviewCase.objects.count() == 0

    def test_wrong_secret_is_refused(self, client):
        response = deliver(
            client, self.event, secret="whsec_" + "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="
        )
        self.assert_refused(response, "No signature")

    def test_body_changed_after_signing_is_refused(self, client):
        body = body_of(self.event)
        headers = signed_headers(body)
        tampered = body.replace(b"Pantry Planner Inc.", b"Pantry Planner Ltd.")
        self.assert_refused(deliver(client, tampered, headers=headers), "No signature")

    @pytest.mark.parametrize(
        "header", ["webhook-id", "webhook-timestamp", "webhook-signature"]
    )
    def test_missing_header_is_refused(self, client, header):
        body = body_of(self.event)
        headers = signed_headers(body)
        del headers[header]
        self.assert_refused(deliver(client, body, headers=headers), header)

    def test_no_headers_at_all(self, client):
        self.assert_refused(deliver(client, self.event, headers={}), "Missing")

    def test_stale_timestamp_is_refused(self, client):
        old = datetime.now(UTC) - timedelta(minutes=5, seconds=30)
        self.assert_refused(deliver(client, self.event, at=old), "5 minutes")

    def test_timestamp_from_the_future_is_refused(self, client):
        ahead = datetime.now(UTC) + timedelta(minutes=6)
        self.assert_refused(deliver(client, self.event, at=ahead), "5 minutes")

    def test_timestamp_within_tolerance_is_accepted(self, client):
        recent = datetime.now(UTC) - timedelta(minutes=4)
        assert deliver(client, self.event, at=recent).status_code == 202

    @pytest.mark.parametrize(
        "signature", ["garbage", "v1,not-base64!!", "v2,AAAA", "v1,"]
    )
    def test_malformed_signature_is_refused(self, client, signature):
        body = body_of(self.event)
        headers = signed_headers(body)
        headers["webhook-signature"] = signature
        response = deliver(client, body, headers=headers)
        assert_problem(response, 401)
        assert PlatformEventReceipt.objects.count() == 0

    def test_non_numeric_timestamp_is_refused(self, client):
        body = body_of(self.event)
        headers = signed_headers(body)
        headers["webhook-timestamp"] = "yesterday"
        self.assert_refused(deliver(client, body, headers=headers), "Unix time")

    def test_one_of_several_signatures_matching_is_enough(self, client):
        # Secret rotation: the platform signs with the old and the new secret.
        body = body_of(self.event)
        headers = signed_headers(body)
        other = Webhook("whsec_" + "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==").sign(
            headers["webhook-id"],
            datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC),
            body.decode(),
        )
        headers["webhook-signature"] = f"{other} {headers['webhook-signature']}"
        assert deliver(client, body, headers=headers).status_code == 202

    def test_body_that_is_not_utf8_cannot_be_verified(self, client):
        body = "Café".encode("latin-1")
        headers = signed_headers(b"Caf")  # any signature: it cannot match
        self.assert_refused(deliver(client, body, headers=headers), "UTF-8")

    def test_overlong_webhook_id_is_refused_by_name(self, client):
        response = deliver(client, self.event, webhook_id="m" * 256)
        assert_problem(response, 400)
        assert fields_named(response) == ["webhook-id"]
        assert PlatformEventReceipt.objects.count() == 0


# --- idempotency ----------------------------------------------------------------------


class TestRedelivery:
    @pytest.mark.parametrize(
        "note, status",
        [
            ("plain partner", 202),
            ("bad: contact email invalid", 400),
            ("bad: unknown event type", 422),
        ],
    )
    def test_same_webhook_id_gets_the_identical_first_answer(
        self, client, note, status
    ):
        body = body_of(sample(note))
        first = deliver(client, body, webhook_id="msg_redelivered")
        assert first.status_code == status
        before = counts()
        receipts = PlatformEventReceipt.objects.count()

        # Re-signed later, as a platform retry is.
        again = deliver(client, body, webhook_id="msg_redelivered")

        assert again.status_code == first.status_code
        assert again["Content-Type"] == first["Content-Type"]
        assert again.content == first.content
        assert counts() == before
        assert PlatformEventReceipt.objects.count() == receipts

    def test_redelivery_after_the_world_changed_still_answers_as_first(
        self, client, reviewer
    ):
        event = sample("plain partner")
        first = deliver(client, event, webhook_id="msg_first")
        approve_case(ReviewCase.objects.get(), reviewer)
        before = counts()

        again = deliver(client, event, webhook_id="msg_first")

        assert again.status_code == 202
        assert again.json() == first.json()
        assert counts() == before
        assert key("pk_1001_a").status == ApiKey.Status.ACTIVE

    def test_a_new_webhook_id_is_a_new_delivery(self, client):
        event = sample("plain partner")
        deliver(client, event)
        response = deliver(client, event)
        assert response.status_code == 200  # same key, case already open
        assert PlatformEventReceipt.objects.count() == 2
        assert ReviewCase.objects.count() == 1


# --- limits and methods ---------------------------------------------------------------


class TestLimits:
    def test_oversized_body_is_refused_before_anything_else(self, client, settings):
        settings.PLATFORM_EVENT_MAX_BYTES = 2048
        event = sample("plain partner")
        event["data"]["integration"]["endpoints"] = ["recipe"] * 400
        body = body_of(event)
        assert len(body) > 2048

        response = deliver(client, body)

        document = assert_problem(response, 413)
        assert "2048 bytes" in document["detail"]
        assert PlatformEventReceipt.objects.count() == 0
        assert ReviewCase.objects.count() == 0

    def test_body_at_the_limit_is_accepted(self, client, settings):
        body = body_of(sample("plain partner"))
        settings.PLATFORM_EVENT_MAX_BYTES = len(body)
        assert deliver(client, body).status_code == 202

    def test_default_limit_refuses_a_large_unsigned_body(self, client):
        body = b"{" + b" " * settings.PLATFORM_EVENT_MAX_BYTES + b"}"
        response = deliver(client, body, headers={})
        assert_problem(response, 413)

    @pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
    def test_other_methods_are_not_allowed(self, client, method):
        response = getattr(client, method)(EVENTS_URL)
        assert_problem(response, 405)
        assert response["Allow"] == "POST"

    def test_no_csrf_token_needed(self):
        strict = Client(enforce_csrf_checks=True)
        assert deliver(strict, sample("plain partner")).status_code == 202

    def test_database_trouble_answers_503_and_stores_nothing(self, client, monkeypatch):
        from django.db import OperationalError

        from reviews import api

        def unavailable(**kwargs):
            raise OperationalError("the database went away")

        monkeypatch.setattr(api, "platform_event_ingest", unavailable)
        response = deliver(client, sample("plain partner"))
        document = assert_problem(response, 503)
        assert "Deliver the event again" in document["detail"]
        assert response["Retry-After"] == "5"

    def test_not_json_is_a_problem_and_is_remembered(self, client):
        response = deliver(client, b"this is not json")
        document = assert_problem(response, 400)
        assert "not JSON" in document["title"]
        receipt = PlatformEventReceipt.objects.get()
        assert receipt.response_status == 400


# --- partner text ---------------------------------------------------------------------


class TestPartnerText:
    def test_markup_is_stored_and_answered_verbatim(self, client):
        event = sample("markup")
        deliver(client, event)
        account = DeveloperAccount.objects.get(platform_account_id="acct_1004")
        assert account.name == event["data"]["account"]["name"]
        assert key("pk_1004_a").name == event["data"]["key"]["name"]
        # JSON answers carry text, not HTML entities.
        response = client.get(
            "/api/v1/keys/pk_1004_a",
            headers={"Authorization": f"Bearer {settings.PLATFORM_API_TOKEN}"},
        )
        assert b"&lt;" not in response.content

    def test_internationalised_email_is_recorded_for_lookup(self, client):
        deliver(client, sample("non-ASCII"))
        assert DeveloperAccountEmail.objects.filter(
            account__platform_account_id="acct_1003", email="jose.muller@bücher.example"
        ).exists()


# --- key status -----------------------------------------------------------------------


def status_of(client, key_id, token=None, **headers):
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.get(f"/api/v1/keys/{key_id}", headers=headers)


class TestKeyStatus:
    def test_answers_status_case_and_time_in_one_query(
        self, client, django_assert_num_queries
    ):
        deliver(client, sample("plain partner"))
        api_key = key("pk_1001_a")
        case = ReviewCase.objects.get()

        with django_assert_num_queries(1):
            response = status_of(client, "pk_1001_a", settings.PLATFORM_API_TOKEN)

        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        assert response["Cache-Control"] == "no-store"
        assert response.json() == {
            "id": "pk_1001_a",
            "status": "pending_approval",
            "case": case.reference,
            "status_changed_at": api_key.status_changed_at.isoformat(),
        }

    def test_follows_the_key_through_denial_and_resubmission(self, client, reviewer):
        deliver(client, sample("plain partner"))
        first = deny_case(ReviewCase.objects.get(), reviewer)
        token = settings.PLATFORM_API_TOKEN
        denied = status_of(client, "pk_1001_a", token).json()
        assert (denied["status"], denied["case"]) == ("denied", first.reference)

        deliver(client, sample("same key requested again"))

        second = ReviewCase.objects.get(attempt=2)
        answer = status_of(client, "pk_1001_a", token).json()
        assert (answer["status"], answer["case"]) == (
            "pending_approval",
            second.reference,
        )
        assert answer["status_changed_at"] > denied["status_changed_at"]

    def test_missing_token_is_challenged(self, client):
        response = status_of(client, "pk_1001_a")
        assert_problem(response, 401)
        assert response["WWW-Authenticate"] == 'Bearer realm="review-desk"'

    @pytest.mark.parametrize(
        "authorization",
        [
            "Bearer wrong-token",
            "Bearer test-platform-token-and-more",
            "Basic dGVzdC1wbGF0Zm9ybS10b2tlbg==",
            "test-platform-token",
            "Bearer",
        ],
    )
    def test_bad_token_is_refused(self, client, authorization):
        deliver(client, sample("plain partner"))
        response = status_of(client, "pk_1001_a", Authorization=authorization)
        document = assert_problem(response, 401)
        assert "token" in document["detail"]
        assert response["WWW-Authenticate"].startswith('Bearer realm="review-desk"')
        assert "pending_approval" not in response.content.decode()

    def test_empty_configured_token_refuses_everyone(self, client, settings):
        settings.PLATFORM_API_TOKEN = ""
        assert status_of(client, "pk_1001_a", "").status_code == 401
        assert status_of(client, "pk_1001_a", "anything").status_code == 401

    def test_unknown_key_is_a_404_problem(self, client):
        response = status_of(client, "pk_nope", settings.PLATFORM_API_TOKEN)
        document = assert_problem(response, 404)
        assert "pk_nope" in document["detail"]

    def test_only_get(self, client):
        response = client.post(
            "/api/v1/keys/pk_1001_a",
            headers={"Authorization": f"Bearer {settings.PLATFORM_API_TOKEN}"},
        )
        assert_problem(response, 405)
        assert response["Allow"] == "GET"


# --- the replay command against a running server -----------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_replay_command_signs_and_posts_each_line(live_server, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text(
        SAMPLES_PATH.read_text(encoding="utf-8").rstrip("\n")
        + "\n"
        + json.dumps(sample("plain partner"))  # a bare event, no note
        + "\nnot json\n",
        encoding="utf-8",
    )
    out = StringIO()
    call_command("replay_platform_events", str(events), url=live_server.url, stdout=out)

    lines = out.getvalue().splitlines()
    assert len(lines) == len(SAMPLES) + 2
    statuses = [int(line.split()[1]) for line in lines]
    # The samples as their expect says, then the bare event (its case is open)
    # and the line that is not JSON.
    assert statuses == [202] * 4 + [200, 202, 200, 200, 400, 400, 422, 400, 400] + [
        200,
        400,
    ]
    assert "# plain partner, core criteria only" in lines[0]
    assert json.loads(lines[0].split(None, 2)[2].split("  # ")[0])["case"]
    assert ReviewCase.objects.count() == 5
    before = counts()

    again = StringIO()
    call_command(
        "replay_platform_events", str(events), url=live_server.url, stdout=again
    )

    # Same lines, same webhook ids: the first answers, and nothing changes.
    assert again.getvalue() == out.getvalue()
    assert counts() == before


def test_replay_command_refuses_other_url_schemes(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n")
    with pytest.raises(CommandError, match="http"):
        call_command("replay_platform_events", str(events), url="file:///etc/passwd")


# --- concurrency (PostgreSQL) ---------------------------------------------------------


@pytest.mark.postgres
# Real commits; serialized_rollback restores the seeded roles and catalogue that
# the flush after the test removes.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_deliveries_of_one_id_at_once_have_one_effect(monkeypatch):
    """The second delivery waits on the receipt's unique index, then answers alike."""
    from reviews.services import ingest

    body = body_of(sample("plain partner"))
    headers = signed_headers(body, webhook_id="msg_concurrent")
    inside = threading.Event()
    go_on = threading.Event()
    real_parse = ingest.parse_event

    def slow_parse(raw):
        # The first delivery holds its uncommitted receipt until told to go on.
        if not inside.is_set():
            inside.set()
            assert go_on.wait(10)
        return real_parse(raw)

    monkeypatch.setattr(ingest, "parse_event", slow_parse)
    responses = {}

    def post(name):
        try:
            responses[name] = deliver(Client(), body, headers=headers)
        finally:
            connections.close_all()

    first = threading.Thread(target=post, args=("first",))
    first.start()
    assert inside.wait(10)
    second = threading.Thread(target=post, args=("second",))
    second.start()
    # Wait until the second delivery is blocked on the first one's row lock.
    deadline = time.monotonic() + 10
    waiting = 0
    while time.monotonic() < deadline and not waiting:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            waiting = cursor.fetchone()[0]
        time.sleep(0.02)
    go_on.set()
    first.join(15)
    second.join(15)

    assert waiting == 1, "the second delivery never waited for the first"
    assert responses["first"].status_code == 202
    assert responses["second"].status_code == 202
    assert responses["second"].content == responses["first"].content
    assert ReviewCase.objects.count() == 1
    assert ApiKey.objects.count() == 1
    assert PlatformEventReceipt.objects.count() == 1
    assert CaseEvent.objects.filter(code="reviews.case.opened").count() == 1


def test_the_fixture_copy_matches_the_shared_samples():
    """reviews/fixtures/ holds a copy so a clone runs alone; it must not drift."""
    if not SHARED_SAMPLES.is_file():
        pytest.skip(f"{SHARED_SAMPLES} is not next to this checkout")
    assert SAMPLES_PATH.read_bytes() == SHARED_SAMPLES.read_bytes()
