"""platform_event_ingest and the account / key services it uses, without HTTP."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts.models import DeveloperAccount, DeveloperAccountEmail
from reviews import services
from reviews.errors import ActionRefused
from reviews.models import (
    ApiKey,
    CaseEvent,
    CheckResult,
    Criterion,
    Notification,
    PlatformEventReceipt,
    ReviewCase,
)
from tests.factories import approve_case, deny_case

pytestmark = pytest.mark.django_db

WHEN = "2026-11-30T09:00:00Z"
ACCOUNT = {
    "id": "acct_1",
    "name": "Pantry Planner Inc.",
    "contact_email": "Dev@Pantry-Planner.example",
    "contact_name": "Sam Rivera",
    "help_desk_account_id": "HD-1",
}


def requested(key_id="pk_1", account=None, **data) -> dict:
    return {
        "type": "production_key.requested",
        "timestamp": WHEN,
        "data": {
            "account": copy.deepcopy(account or ACCOUNT),
            "key": {"id": key_id, "name": "Production", "last4": "9f2c"},
            **data,
        },
    }


def deleted(key_id="pk_1") -> dict:
    return {
        "type": "production_key.deleted",
        "timestamp": WHEN,
        "data": {"key": {"id": key_id}},
    }


def account_updated(**fields) -> dict:
    return {
        "type": "account.updated",
        "timestamp": WHEN,
        "data": {"account": {**ACCOUNT, **fields}},
    }


def ingest(event, webhook_id=None) -> services.IngestAnswer:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    return services.platform_event_ingest(
        webhook_id=webhook_id or f"msg_{uuid.uuid4().hex}", body=body
    )


def snapshot() -> dict[str, int]:
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


def the_case(key_id="pk_1", attempt=1) -> ReviewCase:
    return ReviewCase.objects.get(key__platform_key_id=key_id, attempt=attempt)


class TestNewKey:
    def test_opens_a_queued_case_and_answers_202(self):
        answer = ingest(requested(), webhook_id="msg_a")

        case = the_case()
        assert answer.status == 202
        assert answer.content_type == "application/json"
        assert answer.body == {
            "case": case.reference,
            "key": {"id": "pk_1", "status": "pending_approval"},
        }
        assert answer.replayed is False
        assert case.state == ReviewCase.State.QUEUED
        assert (case.attempt, case.previous_case) == (1, None)
        assert case.checks.count() == 4
        key = case.key
        assert (key.name, key.last4, key.status) == (
            "Production",
            "9f2c",
            ApiKey.Status.PENDING_APPROVAL,
        )
        receipt = PlatformEventReceipt.objects.get(webhook_id="msg_a")
        assert (receipt.event_type, receipt.response_status) == (
            "production_key.requested",
            202,
        )
        assert receipt.response_body == answer.body

    def test_audits_the_new_partner_and_the_opened_case(self):
        ingest(requested())
        account = DeveloperAccount.objects.get(platform_account_id="acct_1")
        created = CaseEvent.objects.get(code="accounts.account.created")
        assert created.account_id == account.pk
        assert created.case_id is None
        assert created.actor_kind == CaseEvent.ActorKind.PLATFORM
        assert created.payload == {
            "account": "acct_1",
            "fields": [
                "contact_email",
                "contact_name",
                "help_desk_account_id",
                "name",
            ],
        }
        opened = CaseEvent.objects.get(code="reviews.case.opened")
        assert opened.case == the_case()
        assert opened.actor_kind == CaseEvent.ActorKind.PLATFORM

    def test_contact_address_is_recorded_lower_cased(self):
        ingest(requested())
        account = DeveloperAccount.objects.get()
        assert account.contact_email == "Dev@Pantry-Planner.example"
        assert list(account.emails.values_list("email", flat=True)) == [
            "dev@pantry-planner.example"
        ]

    def test_affiliate_object_means_affiliate_checks(self):
        account = {**ACCOUNT, "affiliate": {"tastemakers_account_id": "TM-1"}}
        ingest(requested(account=account))
        partner = DeveloperAccount.objects.get()
        assert partner.wants_affiliate is True
        assert partner.tastemakers_account_id == "TM-1"
        assert partner.affiliate_partner_id == ""
        case = the_case()
        assert case.wants_affiliate is True
        assert case.checks.count() == 6

    def test_checks_are_the_active_applicable_criteria_in_order(self):
        Criterion.objects.filter(code="error_handling").update(is_active=False)
        first = Criterion.objects.create(code="first_look", title="First look", order=0)
        extra = Criterion.objects.create(
            code="affiliate_extra",
            title="Affiliate extra",
            applies_to=Criterion.AppliesTo.AFFILIATE,
            order=0,
        )
        ingest(requested())
        affiliate = {
            **ACCOUNT,
            "id": "acct_2",
            "affiliate": {"tastemakers_account_id": "TM-1"},
        }
        ingest(requested(key_id="pk_2", account=affiliate))

        for key_id, wants_affiliate in (("pk_1", False), ("pk_2", True)):
            expected = Criterion.objects.filter(is_active=True)
            if not wants_affiliate:
                expected = expected.filter(applies_to=Criterion.AppliesTo.ALL)
            checks = the_case(key_id).checks.order_by("id")
            assert [check.criterion_id for check in checks] == [
                criterion.pk for criterion in expected.order_by("order", "id")
            ]
            assert {
                (c.result, c.note, c.checked_by_id, c.checked_at, c.version)
                for c in checks
            } == {(CheckResult.Result.UNCHECKED, "", None, None, 0)}
        assert first.pk in {c.criterion_id for c in the_case("pk_1").checks.all()}
        assert extra.pk not in {c.criterion_id for c in the_case("pk_1").checks.all()}
        assert extra.pk in {c.criterion_id for c in the_case("pk_2").checks.all()}

    def test_submitted_at_is_when_the_partner_asked(self):
        asked = timezone.now() - timedelta(days=2)
        event = requested()
        event["timestamp"] = asked.isoformat()
        ingest(event)
        assert the_case().submitted_at == asked

    def test_a_timestamp_from_the_future_counts_as_now(self):
        event = requested()
        event["timestamp"] = (timezone.now() + timedelta(days=30)).isoformat()
        before = timezone.now()
        ingest(event)
        assert before <= the_case().submitted_at <= timezone.now()

    def test_integration_details_are_kept_on_the_case(self):
        ingest(
            requested(
                integration={
                    "app_name": "Planner",
                    "app_url": "https://planner.example/app",
                    "endpoints": ["recipe", "retailers"],
                    "ignored_future_field": True,
                }
            )
        )
        assert the_case().integration == {
            "app_name": "Planner",
            "app_url": "https://planner.example/app",
            "endpoints": ["recipe", "retailers"],
        }

    def test_query_budget(self, django_assert_max_num_queries):
        ingest(requested(key_id="pk_warm"))  # the partner exists now
        # Receipt insert and final update, partner and key locks, key insert, the
        # partner's last denied case, case + checks + audit (one statement on
        # PostgreSQL, three on SQLite), and the savepoint pair of the test's own
        # transaction: nothing per row, no more.
        with django_assert_max_num_queries(11):
            ingest(requested(key_id="pk_2"))

    def test_statements_for_a_new_partner(self, django_assert_num_queries):
        ingest(requested(key_id="pk_warm"))
        other = {**ACCOUNT, "id": "acct_2"}
        # The signed intake's common case. PostgreSQL: the savepoint pair of the
        # test's own transaction, receipt insert, partner and key locks, partner +
        # address + audit in one statement, key insert, case + checks + audit in
        # one statement, receipt update. SQLite runs the ORM path (a savepoint
        # pair and one statement per row written: 15).
        expected = 9 if connection.vendor == "postgresql" else 15
        with django_assert_num_queries(expected):
            ingest(requested(key_id="pk_2", account=other))


class TestRedelivery:
    def test_same_id_returns_the_stored_answer_and_changes_nothing(self):
        first = ingest(requested(), webhook_id="msg_x")
        before = snapshot()

        again = ingest(requested(), webhook_id="msg_x")

        assert (again.status, again.body, again.content_type) == (
            first.status,
            first.body,
            first.content_type,
        )
        assert again.replayed is True
        assert snapshot() == before
        assert PlatformEventReceipt.objects.count() == 1

    def test_stored_refusals_are_replayed_too(self):
        first = ingest(b"{not json", webhook_id="msg_bad")
        again = ingest(b"{not json", webhook_id="msg_bad")
        assert first.status == again.status == 400
        assert again.body == first.body
        assert again.content_type == "application/problem+json"

    def test_same_id_with_another_body_still_gets_the_first_answer(self):
        first = ingest(requested("pk_1"), webhook_id="msg_same")
        again = ingest(requested("pk_other"), webhook_id="msg_same")
        assert again.body == first.body
        assert not ApiKey.objects.filter(platform_key_id="pk_other").exists()


class TestKnownKey:
    def test_open_case_answers_200_and_changes_nothing(self, reviewer):
        ingest(requested())
        case = the_case()
        services.review_case_claim(actor=reviewer, case_id=case.pk)
        before = snapshot()
        renamed = {**ACCOUNT, "name": "Renamed Inc."}

        answer = ingest(requested(account=renamed))

        assert answer.status == 200
        assert answer.body["case"] == case.reference
        assert "already open" in answer.body["detail"]
        assert snapshot() == before
        assert DeveloperAccount.objects.get().name == ACCOUNT["name"]

    def test_denied_key_is_resubmitted_as_the_next_attempt(self, reviewer):
        ingest(requested())
        first = deny_case(the_case(), reviewer)
        event = requested()
        event["data"]["key"]["name"] = "Production (fixed)"

        answer = ingest(event)

        second = the_case(attempt=2)
        assert answer.status == 202
        assert answer.body == {
            "case": second.reference,
            "key": {"id": "pk_1", "status": "pending_approval"},
        }
        assert second.previous_case_id == first.pk
        assert second.key.name == "Production (fixed)"
        assert second.key.status == ApiKey.Status.PENDING_APPROVAL
        resubmitted = CaseEvent.objects.get(code="reviews.key.resubmitted")
        assert resubmitted.case_id == first.pk
        assert (resubmitted.from_state, resubmitted.to_state) == (
            "denied",
            "pending_approval",
        )
        assert resubmitted.actor_kind == CaseEvent.ActorKind.PLATFORM

    def test_a_resubmission_is_never_submitted_before_its_denial(self, reviewer):
        ingest(requested())
        first = deny_case(the_case(), reviewer)
        event = requested()
        # A delayed or replayed event that says it was sent days ago.
        event["timestamp"] = (timezone.now() - timedelta(days=3)).isoformat()

        ingest(event)

        second = the_case(attempt=2)
        assert second.submitted_at >= first.decided_at

    def test_submitted_at_is_the_event_time_never_the_future(self):
        event = requested()
        asked = timezone.now() - timedelta(hours=5)
        event["timestamp"] = asked.isoformat()
        ingest(event)
        assert abs(the_case().submitted_at - asked) < timedelta(seconds=1)

        future = requested("pk_future")
        future["timestamp"] = (timezone.now() + timedelta(days=1)).isoformat()
        ingest(future)
        assert the_case("pk_future").submitted_at <= timezone.now()

    def test_second_denial_then_request_is_attempt_3(self, reviewer):
        ingest(requested())
        deny_case(the_case(), reviewer)
        ingest(requested())
        second = deny_case(the_case(attempt=2), reviewer)

        ingest(requested())

        third = the_case(attempt=3)
        assert third.previous_case_id == second.pk
        assert third.previous_case.previous_case_id == the_case(attempt=1).pk

    def test_new_key_links_to_the_partners_latest_denied_case(self, reviewer):
        ingest(requested("pk_1"))
        deny_case(the_case("pk_1"), reviewer)
        ingest(requested("pk_1"))
        latest_denial = deny_case(the_case("pk_1", attempt=2), reviewer)

        ingest(requested("pk_2"))

        case = the_case("pk_2")
        assert (case.attempt, case.previous_case_id) == (1, latest_denial.pk)

    @pytest.mark.parametrize("status", ["active", "withdrawn", "revoked"])
    def test_final_key_states_are_a_conflict(self, reviewer, status):
        ingest(requested())
        approve_case(the_case(), reviewer)
        if status == "withdrawn":
            ApiKey.objects.filter(platform_key_id="pk_1").update(status=status)
        elif status == "revoked":
            ingest(deleted())
        before = snapshot()

        answer = ingest(requested(account={**ACCOUNT, "name": "Changed"}))

        assert answer.status == 409
        assert answer.content_type == "application/problem+json"
        assert answer.body["key"] == {"id": "pk_1", "status": status}
        assert status in answer.body["title"]
        assert answer.body["errors"][0]["field"] == "data.key.id"
        assert "new key" in answer.body["detail"]
        assert snapshot() == before
        assert DeveloperAccount.objects.get().name == ACCOUNT["name"]

    def test_key_of_another_account_is_a_conflict(self):
        ingest(requested())
        other = {**ACCOUNT, "id": "acct_2", "contact_email": "x@other.example"}
        before = snapshot()

        answer = ingest(requested(account=other))

        assert answer.status == 409
        assert "acct_1" in answer.body["detail"]
        assert answer.body["errors"][0]["field"] == "data.key.id"
        assert snapshot() == before


class TestKeyDeleted:
    @pytest.mark.parametrize("state", ["queued", "in_review", "escalated"])
    def test_open_case_is_withdrawn_without_email(self, reviewer, state):
        ingest(requested())
        case = the_case()
        if state != "queued":
            services.review_case_claim(actor=reviewer, case_id=case.pk)
        if state == "escalated":
            services.review_case_escalate(
                actor=reviewer, case_id=case.pk, note="Not sure about branding"
            )

        answer = ingest(deleted())

        case.refresh_from_db()
        assert answer.status == 200
        assert answer.body["case"] == case.reference
        assert answer.body["key"] == {"id": "pk_1", "status": "withdrawn"}
        assert "withdrawn" in answer.body["detail"]
        assert case.state == ReviewCase.State.WITHDRAWN
        assert case.assignee is None
        assert case.key.status == ApiKey.Status.WITHDRAWN
        assert not Notification.objects.exists()
        event = case.events.get(code="reviews.case.withdrawn")
        assert (event.from_state, event.actor_kind) == (state, "platform")

    def test_active_key_is_revoked(self, reviewer, outbox):
        ingest(requested())
        case = approve_case(the_case(), reviewer)
        notifications = Notification.objects.count()

        answer = ingest(deleted())

        assert answer.status == 200
        assert answer.body["key"] == {"id": "pk_1", "status": "revoked"}
        assert "revoked" in answer.body["detail"]
        key = ApiKey.objects.get()
        assert key.status == ApiKey.Status.REVOKED
        revoked = CaseEvent.objects.get(code="reviews.key.revoked")
        assert revoked.case_id == case.pk
        assert (revoked.from_state, revoked.to_state) == ("active", "revoked")
        assert Notification.objects.count() == notifications

    def test_deleting_twice_changes_nothing_the_second_time(self):
        ingest(requested())
        ingest(deleted())
        before = snapshot()

        answer = ingest(deleted())

        assert answer.status == 200
        assert answer.body["key"]["status"] == "withdrawn"
        assert "already withdrawn" in answer.body["detail"]
        assert snapshot() == before

    def test_denied_key_stays_denied(self, reviewer):
        ingest(requested())
        deny_case(the_case(), reviewer)
        before = snapshot()

        answer = ingest(deleted())

        assert answer.status == 200
        assert answer.body["key"]["status"] == "denied"
        assert snapshot() == before

    def test_unknown_key_is_404_naming_the_field(self):
        answer = ingest(deleted("pk_never"))
        assert answer.status == 404
        assert answer.body["errors"] == [
            {
                "field": "data.key.id",
                "detail": "No key pk_never was ever requested for review.",
            }
        ]
        assert PlatformEventReceipt.objects.get().response_status == 404


class TestAccountUpdated:
    def test_new_contact_address_is_used_and_the_old_one_remembered(self, reviewer):
        ingest(requested())

        answer = ingest(account_updated(contact_email="team@pantry-planner.example"))

        assert answer.status == 200
        assert answer.body == {
            "account": {"id": "acct_1", "created": False, "changed": ["contact_email"]}
        }
        account = DeveloperAccount.objects.get()
        assert account.contact_email == "team@pantry-planner.example"
        assert set(account.emails.values_list("email", flat=True)) == {
            "dev@pantry-planner.example",
            "team@pantry-planner.example",
        }
        # The next decision email goes to the new address.
        approve_case(the_case(), reviewer)
        assert Notification.objects.get().to_email == "team@pantry-planner.example"

    def test_only_changed_fields_are_audited(self):
        ingest(requested())
        ingest(account_updated(name="Pantry Planner Ltd", contact_name="Sam R."))
        updated = CaseEvent.objects.get(code="accounts.account.updated")
        assert updated.payload["fields"] == ["contact_name", "name"]
        assert "Sam R." not in json.dumps(updated.payload)  # names, not values

    def test_nothing_changed_writes_nothing(self):
        ingest(requested())
        before = snapshot()
        answer = ingest(account_updated())
        assert answer.body["account"]["changed"] == []
        assert snapshot() == before

    def test_left_out_fields_are_kept_and_null_clears(self):
        ingest(requested(account={**ACCOUNT, "affiliate": {"partner_id": "55"}}))
        event = account_updated()
        del event["data"]["account"]["contact_name"]
        event["data"]["account"]["help_desk_account_id"] = None
        event["data"]["account"]["affiliate"] = None

        ingest(event)

        account = DeveloperAccount.objects.get()
        assert account.contact_name == "Sam Rivera"
        assert account.help_desk_account_id == ""
        assert account.wants_affiliate is False
        assert account.affiliate_partner_id == ""

    def test_unknown_account_is_created(self):
        answer = ingest(account_updated(id="acct_new"))
        assert answer.body["account"]["created"] is True
        assert DeveloperAccount.objects.filter(platform_account_id="acct_new").exists()


SINGLE_LINE_FIELDS = [
    ("data.account.id", ("account", "id")),
    ("data.account.name", ("account", "name")),
    ("data.account.contact_name", ("account", "contact_name")),
    ("data.account.help_desk_account_id", ("account", "help_desk_account_id")),
    ("data.key.id", ("key", "id")),
    ("data.key.name", ("key", "name")),
    ("data.key.last4", ("key", "last4")),
]


class TestValidation:
    def refused(self, event, status=400) -> services.IngestAnswer:
        before = snapshot()
        answer = ingest(event)
        assert answer.status == status, answer.body
        assert answer.content_type == "application/problem+json"
        assert answer.body["status"] == status
        assert snapshot() == before
        return answer

    @pytest.mark.parametrize("path, where", SINGLE_LINE_FIELDS)
    @pytest.mark.parametrize(
        "bad", ["a\r\nBcc: x@y.example", "a\nb", "a\x00", "a\u2028"]
    )
    def test_line_breaks_and_control_characters_are_refused(self, path, where, bad):
        event = requested()
        part, name = where
        event["data"][part][name] = bad[:8] if name == "last4" else bad
        answer = self.refused(event)
        assert [error["field"] for error in answer.body["errors"]] == [path]

    def test_every_bad_field_is_named_at_once(self):
        event = requested(
            integration={
                "app_name": "",
                "app_url": "javascript:alert(1)",
                "endpoints": ["recipe", 7],
            }
        )
        event["timestamp"] = "2026-11-30T09:00:00"  # no time zone
        event["data"]["account"]["id"] = "acct 1"
        event["data"]["account"]["contact_email"] = "nobody"
        event["data"]["account"]["affiliate"] = "yes"
        event["data"]["key"]["id"] = "k" * 65
        event["data"]["key"]["created_at"] = "yesterday"

        answer = self.refused(event)

        assert [error["field"] for error in answer.body["errors"]] == [
            "timestamp",
            "data.account.id",
            "data.account.contact_email",
            "data.account.affiliate",
            "data.key.id",
            "data.key.created_at",
            "data.integration.app_name",
            "data.integration.app_url",
            "data.integration.endpoints[1]",
        ]
        details = {e["field"]: e["detail"] for e in answer.body["errors"]}
        assert "time zone" in details["timestamp"]
        assert details["data.key.id"] == "Must be at most 64 characters long."
        assert details["data.account.affiliate"] == "Must be an object, not a string."
        assert "https://" in details["data.integration.app_url"]

    @pytest.mark.parametrize(
        "body, words",
        [
            (b"", "not JSON"),
            (b'{"type": ', "not JSON"),
            (b"\xff\xfe\x00", "not JSON"),
            (b"[1, 2]", "not a JSON object"),
            (b'"production_key.requested"', "not a JSON object"),
        ],
    )
    def test_body_that_is_not_an_object(self, body, words):
        answer = self.refused(body)
        assert words in answer.body["title"]

    def test_missing_or_non_string_type(self):
        event = requested()
        del event["type"]
        assert self.refused(event).body["errors"][0] == {
            "field": "type",
            "detail": "This field is required.",
        }
        event["type"] = 3
        assert self.refused(event).body["errors"][0]["detail"] == (
            "Must be a string, not a number."
        )

    def test_unknown_type_is_422_and_remembered_with_its_type(self):
        event = requested()
        event["type"] = "production_key.exploded"
        answer = self.refused(event, status=422)
        assert answer.body["errors"][0]["field"] == "type"
        receipt = PlatformEventReceipt.objects.get()
        assert receipt.event_type == "production_key.exploded"
        assert receipt.response_status == 422

    def test_key_name_is_optional_but_account_name_is_not(self):
        event = requested()
        del event["data"]["key"]["name"]
        assert ingest(event).status == 202
        event = requested("pk_2")
        del event["data"]["account"]["name"]
        answer = self.refused(event)
        assert answer.body["errors"][0]["field"] == "data.account.name"

    @pytest.mark.parametrize(
        "email",
        ["jose.muller@bücher.example", "a.b+tag@sub.example.co.uk", "X@Y.EXAMPLE"],
    )
    def test_valid_addresses_are_accepted(self, email):
        answer = ingest(requested(account={**ACCOUNT, "contact_email": email}))
        assert answer.status == 202
        assert DeveloperAccountEmail.objects.get().email == email.lower()

    @pytest.mark.parametrize(
        "email", ["not-an-email", "a@b", "two@@example.com", "a b@example.com", ""]
    )
    def test_invalid_addresses_are_refused(self, email):
        answer = self.refused(requested(account={**ACCOUNT, "contact_email": email}))
        assert answer.body["errors"][0]["field"] == "data.account.contact_email"

    def test_markup_is_valid_text(self):
        name = "<b>Bold</b> Foods <script>alert('x')</script>"
        assert ingest(requested(account={**ACCOUNT, "name": name})).status == 202
        assert DeveloperAccount.objects.get().name == name


class TestKeyServices:
    def test_revoking_a_key_that_is_not_active_is_refused(self):
        ingest(requested())
        key = ApiKey.objects.get()
        with pytest.raises(
            ActionRefused, match="is pending approval; only a key that is active"
        ):
            services.api_key_revoke(key_id=key.pk)
        assert not CaseEvent.objects.filter(code="reviews.key.revoked").exists()

    def test_resubmitting_a_key_that_is_not_denied_is_refused(self):
        ingest(requested())
        key = ApiKey.objects.get()
        with pytest.raises(
            ActionRefused, match="only a key that is denied can be resubmitted"
        ):
            services.api_key_resubmit(key_id=key.pk)


class TestDeveloperAccountUpsert:
    def test_creates_then_updates_with_changed_fields(self):
        created = services.developer_account_upsert(
            platform_account_id="acct_9",
            name="Nine",
            contact_email="nine@nine.example",
        )
        assert created.created is True
        assert created.changed == ["contact_email", "name"]

        updated = services.developer_account_upsert(
            platform_account_id="acct_9",
            name="Nine",
            contact_email="NINE@nine.example",
            wants_affiliate=True,
        )

        assert updated.created is False
        assert updated.changed == ["contact_email", "wants_affiliate"]
        assert updated.account.pk == created.account.pk
        # Same address in another case: still one lookup row.
        assert list(DeveloperAccountEmail.objects.values_list("email", flat=True)) == [
            "nine@nine.example"
        ]


class TestReplayDirect:
    def test_replaying_a_file_twice_changes_nothing(self, tmp_path):
        events = tmp_path / "events.jsonl"
        events.write_text(
            "\n".join(
                json.dumps({"note": f"event {n}", "expect": "202", "event": event})
                for n, event in enumerate([requested("pk_1"), requested("pk_2")])
            )
            + "\n# a comment\n\n"
            + json.dumps(deleted("pk_1"))
            + "\n",
            encoding="utf-8",
        )
        out = StringIO()
        call_command("replay_platform_events", str(events), direct=True, stdout=out)
        first = out.getvalue().splitlines()
        assert [line.split()[:2] for line in first] == [
            ["1", "202"],
            ["2", "202"],
            ["5", "200"],
        ]
        assert first[0].endswith("# event 0")
        before = snapshot()

        again = StringIO()
        call_command("replay_platform_events", str(events), direct=True, stdout=again)

        assert again.getvalue().splitlines() == first
        assert snapshot() == before
        assert PlatformEventReceipt.objects.count() == 3

    def test_a_salt_makes_new_deliveries(self, tmp_path):
        events = tmp_path / "events.jsonl"
        events.write_text(json.dumps(requested()) + "\n", encoding="utf-8")
        call_command(
            "replay_platform_events", str(events), direct=True, stdout=StringIO()
        )
        out = StringIO()
        call_command(
            "replay_platform_events",
            str(events),
            direct=True,
            id_salt="second",
            stdout=out,
        )
        assert out.getvalue().split()[1] == "200"  # a new delivery: already open
        assert PlatformEventReceipt.objects.count() == 2
