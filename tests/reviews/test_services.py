"""Case services (reviews/services/cases.py): every transition, allowed and refused.

Each allowed transition asserts its audit ``CaseEvent``; each refusal asserts that
the message is one a reviewer can act on and that nothing changed in the database.
"""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reviews import audit, services, tasks
from reviews.errors import ActionRefused, PermissionRefused, StaleEdit
from reviews.models import (
    ApiKey,
    CaseDenialReason,
    CaseEvent,
    CheckResult,
    Criterion,
    DenialReason,
    Notification,
    ReviewCase,
)
from reviews.services import CheckChange, DenialChoice
from tests.factories import make_case, make_user, pass_all_checks

pytestmark = pytest.mark.django_db

CORE = ["terms_compliance", "api_spec_format", "error_handling", "help_desk_account"]
AFFILIATE = ["tastemakers_account", "affiliate_partner_id"]


# --- helpers ------------------------------------------------------------------------


def criterion(code: str) -> Criterion:
    return Criterion.objects.get(code=code)


def reason(code: str) -> DenialReason:
    return DenialReason.objects.get(code=code)


def check(case: ReviewCase, code: str) -> CheckResult:
    return CheckResult.objects.get(case=case, criterion__code=code)


def events(case: ReviewCase, code: str | None = None) -> list[CaseEvent]:
    queryset = CaseEvent.objects.filter(case=case).order_by("id")
    if code:
        queryset = queryset.filter(code=code)
    return list(queryset)


def last_event(case: ReviewCase) -> CaseEvent:
    return CaseEvent.objects.filter(case=case).latest("id")


def fresh(case: ReviewCase) -> ReviewCase:
    return ReviewCase.objects.select_related("key").get(pk=case.pk)


def held_case(actor, **fields) -> ReviewCase:
    """A case claimed by ``actor``."""
    case = make_case(**fields)
    return services.review_case_claim(actor=actor, case_id=case.pk)


def record(case: ReviewCase, actor, **results: str) -> list[CheckResult]:
    return services.review_case_record_checks(
        actor=actor,
        case_id=case.pk,
        changes=[
            CheckChange(criterion(code).pk, result) for code, result in results.items()
        ],
    )


def failed_case(actor, failing: str = "terms_compliance", **fields) -> ReviewCase:
    """A case held by ``actor`` with every check passed except ``failing``."""
    case = held_case(actor, **fields)
    pass_all_checks(case, actor)
    record(case, actor, **{failing: "fail"})
    return case


def escalated_case(actor) -> ReviewCase:
    case = held_case(actor)
    return services.review_case_escalate(
        actor=actor, case_id=case.pk, note="Unsure about the branding."
    )


def db_snapshot() -> dict:
    """Everything a case service may write, to prove a refusal changed nothing."""
    return {
        "cases": list(
            ReviewCase.objects.order_by("pk").values_list(
                "pk",
                "state",
                "assignee_id",
                "claimed_at",
                "last_activity_at",
                "decided_by_id",
                "escalation_note",
            )
        ),
        "keys": list(ApiKey.objects.order_by("pk").values_list("pk", "status")),
        "checks": list(
            CheckResult.objects.order_by("pk").values_list(
                "pk", "result", "note", "version", "checked_by_id"
            )
        ),
        "events": CaseEvent.objects.count(),
        "notifications": Notification.objects.count(),
        "denial_reasons": CaseDenialReason.objects.count(),
    }


@pytest.fixture
def delay_spy():
    """Stands in for the broker: records what was handed to Celery, and when."""
    with mock.patch.object(tasks.notification_send, "delay") as spy:
        yield spy


def assert_event(
    event: CaseEvent,
    code: str,
    *,
    actor=None,
    actor_kind: str = CaseEvent.ActorKind.USER,
    from_state: str = "",
    to_state: str = "",
    payload: dict | None = None,
) -> None:
    assert event.code == code
    assert event.actor_id == (actor.pk if actor else None)
    assert event.actor_kind == actor_kind
    assert event.from_state == from_state
    assert event.to_state == to_state
    assert event.account_id == event.case.account_id
    if payload is not None:
        assert event.payload == payload


# --- opening ------------------------------------------------------------------------


class TestReviewCaseOpen:
    def test_opens_a_queued_case_with_the_core_checklist(self):
        case = make_case()
        assert case.state == ReviewCase.State.QUEUED
        assert case.assignee is None
        assert sorted(case.checks.values_list("criterion__code", flat=True)) == sorted(
            CORE
        )
        assert set(case.checks.values_list("result", flat=True)) == {"unchecked"}
        assert_event(
            last_event(case),
            audit.CASE_OPENED,
            actor_kind=CaseEvent.ActorKind.PLATFORM,
            to_state="queued",
            payload={
                "key": case.key.platform_key_id,
                "attempt": 1,
                "previous_case": None,
            },
        )

    def test_affiliate_partner_gets_affiliate_criteria_too(self):
        case = make_case(affiliate=True)
        assert sorted(case.checks.values_list("criterion__code", flat=True)) == sorted(
            CORE + AFFILIATE
        )

    def test_inactive_criteria_are_left_out(self):
        Criterion.objects.filter(code="error_handling").update(is_active=False)
        case = make_case()
        assert "error_handling" not in case.checks.values_list(
            "criterion__code", flat=True
        )

    def test_resubmission_is_logged_with_its_previous_case(self, reviewer):
        first = failed_case(reviewer)
        services.review_case_deny(
            actor=reviewer,
            case_id=first.pk,
            reasons=[DenialChoice(reason("terms_branding").pk)],
        )
        key = ApiKey.objects.get(pk=first.key_id)
        # The platform resubmits the key (the ingest service owns this step).
        key.resubmit()
        key.save()
        second = make_case(
            account=first.account, key=key, previous_case=first, attempt=2
        )
        assert_event(
            last_event(second),
            audit.CASE_RESUBMITTED,
            actor_kind=CaseEvent.ActorKind.PLATFORM,
            to_state="queued",
            payload={
                "key": key.platform_key_id,
                "attempt": 2,
                "previous_case": first.reference,
            },
        )


# --- claiming -----------------------------------------------------------------------


class TestReviewCaseClaimNext:
    def test_gives_the_oldest_queued_case_first(self, reviewer):
        now = timezone.now()
        newer = make_case(submitted_at=now - timedelta(hours=1))
        oldest = make_case(submitted_at=now - timedelta(hours=3))
        middle = make_case(submitted_at=now - timedelta(hours=2))

        order = [services.review_case_claim_next(actor=reviewer).pk for _ in range(3)]

        assert order == [oldest.pk, middle.pk, newer.pk]

    def test_same_submission_time_goes_by_id(self, reviewer):
        at = timezone.now() - timedelta(hours=1)
        first, second = make_case(submitted_at=at), make_case(submitted_at=at)
        assert services.review_case_claim_next(actor=reviewer).pk == first.pk
        assert services.review_case_claim_next(actor=reviewer).pk == second.pk

    def test_claims_and_logs(self, reviewer):
        case = make_case()
        before = timezone.now()

        claimed = services.review_case_claim_next(actor=reviewer)

        case = fresh(case)
        assert claimed.pk == case.pk
        assert case.state == ReviewCase.State.IN_REVIEW
        assert case.assignee == reviewer
        assert case.claimed_at >= before
        assert case.last_activity_at == case.claimed_at
        assert_event(
            last_event(case),
            audit.CASE_CLAIMED,
            actor=reviewer,
            from_state="queued",
            to_state="in_review",
            payload={},
        )

    def test_skips_cases_that_are_not_queued(self, reviewer, reviewer2, senior):
        old = timezone.now() - timedelta(days=1)
        held_case(reviewer2, submitted_at=old)
        escalated_case(reviewer2)
        queued = make_case()
        assert services.review_case_claim_next(actor=reviewer).pk == queued.pk

    def test_empty_queue_gives_none_and_logs_nothing(self, reviewer):
        held_case(reviewer)
        count = CaseEvent.objects.count()
        assert services.review_case_claim_next(actor=reviewer) is None
        assert CaseEvent.objects.count() == count

    def test_query_count_does_not_grow_with_the_queue(
        self, reviewer, django_assert_max_num_queries
    ):
        for _ in range(20):
            make_case()
        # permission lookup, locked head of the queue, update, audit row (+ savepoint)
        with django_assert_max_num_queries(8):
            services.review_case_claim_next(actor=reviewer)


class TestReviewCaseClaim:
    def test_claims_a_queued_case(self, reviewer):
        case = make_case()
        services.review_case_claim(actor=reviewer, case_id=case.pk)
        case = fresh(case)
        assert case.state == ReviewCase.State.IN_REVIEW
        assert case.assignee == reviewer
        assert_event(
            last_event(case),
            audit.CASE_CLAIMED,
            actor=reviewer,
            from_state="queued",
            to_state="in_review",
        )

    def test_claiming_your_own_case_again_is_a_no_op(self, reviewer):
        case = held_case(reviewer)
        before = db_snapshot()
        again = services.review_case_claim(actor=reviewer, case_id=case.pk)
        assert again.pk == case.pk
        assert db_snapshot() == before
        assert len(events(case, audit.CASE_CLAIMED)) == 1

    def test_case_held_by_someone_else_is_refused(self, reviewer, reviewer2):
        case = held_case(reviewer2)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_claim(actor=reviewer, case_id=case.pk)
        assert refused.value.code == "taken"
        message = refused.value.message
        assert case.reference in message
        assert "Rob Reviewer" in message  # who holds it
        assert "next case" in message  # what to do instead
        assert db_snapshot() == before

    @pytest.mark.parametrize("state", ["escalated", "approved", "withdrawn"])
    def test_case_that_is_not_queued_is_refused(self, reviewer, reviewer2, state):
        if state == "escalated":
            case = escalated_case(reviewer2)
        elif state == "approved":
            case = held_case(reviewer2)
            pass_all_checks(case, reviewer2)
            services.review_case_approve(actor=reviewer2, case_id=case.pk)
        else:
            case = services.review_case_withdraw(case_id=make_case().pk)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_claim(actor=reviewer, case_id=case.pk)
        assert refused.value.code == "state"
        assert case.reference in refused.value.message
        assert state in refused.value.message
        assert "queued" in refused.value.message
        assert db_snapshot() == before

    def test_unknown_case_is_refused_by_reference(self, reviewer):
        with pytest.raises(ActionRefused) as refused:
            services.review_case_claim(actor=reviewer, case_id=987654)
        assert "RC-987654" in refused.value.message
        assert "does not exist; check the reference" in refused.value.message


class TestReviewCaseRelease:
    def test_assignee_releases_to_the_queue(self, reviewer):
        case = held_case(reviewer)
        services.review_case_release(actor=reviewer, case_id=case.pk, note="lunch")
        case = fresh(case)
        assert case.state == ReviewCase.State.QUEUED
        assert case.assignee is None
        assert case.claimed_at is None
        assert case.last_activity_at is None
        assert_event(
            last_event(case),
            audit.CASE_RELEASED,
            actor=reviewer,
            from_state="in_review",
            to_state="queued",
            payload={"former_assignee": reviewer.pk, "note": "lunch"},
        )

    def test_released_case_can_be_claimed_by_another(self, reviewer, reviewer2):
        case = held_case(reviewer)
        services.review_case_release(actor=reviewer, case_id=case.pk)
        assert services.review_case_claim_next(actor=reviewer2).pk == case.pk

    def test_senior_releases_anyones_case(self, reviewer, senior):
        case = held_case(reviewer)
        services.review_case_release(actor=senior, case_id=case.pk)
        case = fresh(case)
        assert case.state == ReviewCase.State.QUEUED
        assert_event(
            last_event(case),
            audit.CASE_RELEASED,
            actor=senior,
            from_state="in_review",
            to_state="queued",
            payload={"former_assignee": reviewer.pk, "note": ""},
        )

    def test_another_reviewer_is_refused(self, reviewer, reviewer2):
        case = held_case(reviewer2)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_release(actor=reviewer, case_id=case.pk)
        assert refused.value.code == "not_assignee"
        assert case.reference in refused.value.message
        assert "Rob Reviewer holds it" in refused.value.message
        assert db_snapshot() == before

    def test_queued_case_cannot_be_released(self, reviewer, senior):
        case = make_case()
        before = db_snapshot()
        for actor in (reviewer, senior):
            with pytest.raises(ActionRefused) as refused:
                services.review_case_release(actor=actor, case_id=case.pk)
            assert case.reference in refused.value.message
            assert "in review" in refused.value.message
        assert db_snapshot() == before

    def test_senior_cannot_release_an_escalated_case(self, reviewer, senior):
        case = escalated_case(reviewer)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_release(actor=senior, case_id=case.pk)
        assert refused.value.code == "state"
        assert db_snapshot() == before


class TestReviewCaseEscalate:
    def test_escalates_with_a_note(self, reviewer):
        case = held_case(reviewer)
        services.review_case_escalate(
            actor=reviewer, case_id=case.pk, note="  Branding looks off.  "
        )
        case = fresh(case)
        assert case.state == ReviewCase.State.ESCALATED
        assert case.assignee is None
        assert case.escalation_note == "Branding looks off."
        assert_event(
            last_event(case),
            audit.CASE_ESCALATED,
            actor=reviewer,
            from_state="in_review",
            to_state="escalated",
            payload={"note": "Branding looks off."},
        )

    @pytest.mark.parametrize("note", ["", "   \n "])
    def test_note_is_required(self, reviewer, note):
        case = held_case(reviewer)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_escalate(actor=reviewer, case_id=case.pk, note=note)
        assert refused.value.code == "note_required"
        assert case.reference in refused.value.message
        assert "note" in refused.value.message
        assert db_snapshot() == before

    def test_only_the_assignee_escalates(self, reviewer, reviewer2):
        case = held_case(reviewer2)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_escalate(actor=reviewer, case_id=case.pk, note="x")
        assert refused.value.code == "not_assignee"
        assert db_snapshot() == before

    def test_queued_case_cannot_be_escalated(self, reviewer):
        case = make_case()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_escalate(actor=reviewer, case_id=case.pk, note="x")
        assert case.reference in refused.value.message
        assert fresh(case).state == ReviewCase.State.QUEUED


class TestReviewCaseTake:
    def test_senior_takes_an_escalated_case(self, reviewer, senior):
        case = escalated_case(reviewer)
        services.review_case_take(actor=senior, case_id=case.pk)
        case = fresh(case)
        assert case.state == ReviewCase.State.IN_REVIEW
        assert case.assignee == senior
        assert case.escalation_note == "Unsure about the branding."
        assert_event(
            last_event(case),
            audit.CASE_TAKEN,
            actor=senior,
            from_state="escalated",
            to_state="in_review",
        )

    def test_senior_can_then_decide_it(self, reviewer, senior):
        case = escalated_case(reviewer)
        services.review_case_take(actor=senior, case_id=case.pk)
        pass_all_checks(case, senior)
        services.review_case_approve(actor=senior, case_id=case.pk)
        assert fresh(case).decided_by == senior

    def test_reviewer_cannot_take(self, reviewer, reviewer2):
        case = escalated_case(reviewer2)
        before = db_snapshot()
        with pytest.raises(PermissionRefused) as refused:
            services.review_case_take(actor=reviewer, case_id=case.pk)
        assert "take escalated cases" in refused.value.message
        assert db_snapshot() == before

    @pytest.mark.parametrize("state", ["queued", "in_review"])
    def test_only_escalated_cases_can_be_taken(self, reviewer, senior, state):
        case = make_case() if state == "queued" else held_case(reviewer)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_take(actor=senior, case_id=case.pk)
        assert refused.value.code == "state"
        assert case.reference in refused.value.message
        assert "escalated" in refused.value.message
        assert db_snapshot() == before


class TestReviewCaseReassign:
    def test_queued_case_to_a_reviewer(self, senior, reviewer):
        case = make_case()
        services.review_case_reassign(actor=senior, case_id=case.pk, assignee=reviewer)
        case = fresh(case)
        assert case.state == ReviewCase.State.IN_REVIEW
        assert case.assignee == reviewer
        assert_event(
            last_event(case),
            audit.CASE_REASSIGNED,
            actor=senior,
            from_state="queued",
            to_state="in_review",
            payload={"former_assignee": None, "assignee": reviewer.pk},
        )

    def test_case_in_review_moves_to_another_reviewer(
        self, senior, reviewer, reviewer2
    ):
        case = held_case(reviewer)
        services.review_case_reassign(actor=senior, case_id=case.pk, assignee=reviewer2)
        case = fresh(case)
        assert case.state == ReviewCase.State.IN_REVIEW
        assert case.assignee == reviewer2
        assert_event(
            last_event(case),
            audit.CASE_REASSIGNED,
            actor=senior,
            from_state="in_review",
            to_state="in_review",
            payload={"former_assignee": reviewer.pk, "assignee": reviewer2.pk},
        )
        # The former assignee no longer works it; the new one does.
        with pytest.raises(ActionRefused) as refused:
            record(case, reviewer, terms_compliance="pass")
        assert refused.value.code == "not_assignee"
        assert "Rob Reviewer holds it" in refused.value.message
        record(case, reviewer2, terms_compliance="pass")

    def test_escalated_case_to_a_reviewer(self, senior, reviewer, reviewer2):
        case = escalated_case(reviewer)
        services.review_case_reassign(actor=senior, case_id=case.pk, assignee=reviewer2)
        case = fresh(case)
        assert case.state == ReviewCase.State.IN_REVIEW
        assert case.assignee == reviewer2
        assert last_event(case).from_state == "escalated"

    def test_reviewer_cannot_reassign(self, reviewer, reviewer2):
        case = held_case(reviewer)
        before = db_snapshot()
        with pytest.raises(PermissionRefused):
            services.review_case_reassign(
                actor=reviewer, case_id=case.pk, assignee=reviewer2
            )
        assert db_snapshot() == before

    @pytest.mark.parametrize("target", ["support", "admin", "no_role", "inactive"])
    def test_target_must_be_an_active_reviewer(self, senior, reviewer, target):
        case = held_case(reviewer)
        if target == "support":
            assignee = make_user("Support", "s@staff.example", "Stan Support")
        elif target == "admin":
            assignee = make_user("Admin", "a@staff.example", "Ada Admin")
        elif target == "no_role":
            assignee = make_user(None, "n@staff.example", "Nora Nobody")
        else:
            assignee = make_user("Reviewer", "i@staff.example", "Ivy Inactive")
            assignee.is_active = False
            assignee.save()
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_reassign(
                actor=senior, case_id=case.pk, assignee=assignee
            )
        assert str(assignee) in refused.value.message
        assert case.reference in refused.value.message
        assert "choose" in refused.value.message.lower()
        assert db_snapshot() == before

    def test_decided_case_cannot_be_reassigned(self, senior, reviewer, reviewer2):
        case = held_case(reviewer)
        pass_all_checks(case, reviewer)
        services.review_case_approve(actor=reviewer, case_id=case.pk)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_reassign(
                actor=senior, case_id=case.pk, assignee=reviewer2
            )
        assert refused.value.code == "state"
        assert db_snapshot() == before


# --- the checklist ------------------------------------------------------------------


class TestReviewCaseRecordChecks:
    def test_assignee_records_a_result(self, reviewer):
        case = held_case(reviewer)
        ReviewCase.objects.filter(pk=case.pk).update(
            last_activity_at=timezone.now() - timedelta(minutes=10)
        )
        before = timezone.now()

        changed = services.review_case_record_checks(
            actor=reviewer,
            case_id=case.pk,
            changes=[
                CheckChange(criterion("terms_compliance").pk, "pass", " Looks fine. ")
            ],
        )

        assert [c.criterion.code for c in changed] == ["terms_compliance"]
        row = check(case, "terms_compliance")
        assert row.result == CheckResult.Result.PASS
        assert row.note == "Looks fine."
        assert row.checked_by == reviewer
        assert row.checked_at >= before
        assert row.version == 1
        assert fresh(case).last_activity_at >= before  # the lease is renewed
        assert_event(
            last_event(case),
            audit.CASE_CHECK_RECORDED,
            actor=reviewer,
            payload={
                "criterion": "terms_compliance",
                "from": "unchecked",
                "to": "pass",
                "note": "Looks fine.",
            },
        )

    def test_several_changes_at_once_log_one_event_each(self, reviewer):
        case = held_case(reviewer)
        record(case, reviewer, terms_compliance="pass", error_handling="fail")
        assert check(case, "terms_compliance").result == "pass"
        assert check(case, "error_handling").result == "fail"
        logged = events(case, audit.CASE_CHECK_RECORDED)
        assert [(e.payload["criterion"], e.payload["to"]) for e in logged] == [
            ("terms_compliance", "pass"),
            ("error_handling", "fail"),
        ]

    def test_changing_a_result_logs_from_and_to(self, reviewer):
        case = held_case(reviewer)
        record(case, reviewer, terms_compliance="pass")
        record(case, reviewer, terms_compliance="fail")
        row = check(case, "terms_compliance")
        assert (row.result, row.version) == ("fail", 2)
        assert last_event(case).payload["from"] == "pass"
        assert last_event(case).payload["to"] == "fail"

    def test_single_check_wrapper(self, reviewer):
        case = held_case(reviewer)
        crit_id = criterion("api_spec_format").pk
        saved = services.review_case_record_check(
            actor=reviewer, case_id=case.pk, criterion_id=crit_id, result="pass"
        )
        assert saved.result == "pass"
        again = services.review_case_record_check(
            actor=reviewer, case_id=case.pk, criterion_id=crit_id, result="pass"
        )
        assert again is None

    def test_unchanged_is_a_no_op(self, reviewer):
        case = held_case(reviewer)
        record(case, reviewer, terms_compliance="pass")
        before = db_snapshot()
        assert record(case, reviewer, terms_compliance="pass") == []
        assert (
            services.review_case_record_checks(
                actor=reviewer,
                case_id=case.pk,
                changes=[CheckChange(criterion("error_handling").pk, "unchecked")],
            )
            == []
        )
        assert db_snapshot() == before

    def test_note_only_change_is_saved(self, reviewer):
        case = held_case(reviewer)
        record(case, reviewer, terms_compliance="pass")
        services.review_case_record_checks(
            actor=reviewer,
            case_id=case.pk,
            changes=[CheckChange(criterion("terms_compliance").pk, "pass", "ok")],
        )
        row = check(case, "terms_compliance")
        assert (row.note, row.version) == ("ok", 2)

    def test_matching_expected_version_is_accepted(self, reviewer):
        case = held_case(reviewer)
        crit_id = criterion("terms_compliance").pk
        services.review_case_record_checks(
            actor=reviewer,
            case_id=case.pk,
            changes=[CheckChange(crit_id, "pass", expected_version=0)],
        )
        services.review_case_record_checks(
            actor=reviewer,
            case_id=case.pk,
            changes=[CheckChange(crit_id, "fail", expected_version=1)],
        )
        assert check(case, "terms_compliance").version == 2

    def test_stale_version_is_refused_and_nothing_is_saved(self, reviewer):
        case = held_case(reviewer)
        crit_id = criterion("terms_compliance").pk
        record(case, reviewer, terms_compliance="pass")  # version 1 now
        before = db_snapshot()
        with pytest.raises(StaleEdit) as refused:
            services.review_case_record_checks(
                actor=reviewer,
                case_id=case.pk,
                changes=[CheckChange(crit_id, "fail", "bad", expected_version=0)],
            )
        assert refused.value.code == "stale"
        message = refused.value.message
        assert "Rita Reviewer" in message  # who changed it
        assert "100% compliance with the terms & conditions" in message
        assert "Nothing was saved" in message
        assert "reload" in message
        assert db_snapshot() == before

    def test_stale_edit_is_all_or_nothing(self, reviewer):
        case = held_case(reviewer)
        record(case, reviewer, error_handling="pass")  # version 1 now
        before = db_snapshot()
        with pytest.raises(StaleEdit):
            services.review_case_record_checks(
                actor=reviewer,
                case_id=case.pk,
                changes=[
                    # Valid changes listed first are rolled back with the stale one.
                    CheckChange(criterion("terms_compliance").pk, "pass", "", 0),
                    CheckChange(criterion("api_spec_format").pk, "fail", "", 0),
                    CheckChange(criterion("error_handling").pk, "fail", "", 0),
                ],
            )
        assert db_snapshot() == before
        assert check(case, "terms_compliance").result == "unchecked"
        assert check(case, "api_spec_format").version == 0

    def test_invalid_change_is_all_or_nothing(self, reviewer):
        case = held_case(reviewer)
        before = db_snapshot()
        with pytest.raises(ActionRefused):
            services.review_case_record_checks(
                actor=reviewer,
                case_id=case.pk,
                changes=[
                    CheckChange(criterion("terms_compliance").pk, "pass"),
                    CheckChange(criterion("api_spec_format").pk, "maybe"),
                ],
            )
        assert db_snapshot() == before

    @pytest.mark.parametrize("code", CORE)
    def test_core_criterion_cannot_be_not_applicable(self, reviewer, code):
        case = held_case(reviewer, affiliate=True)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            record(case, reviewer, **{code: "not_applicable"})
        message = refused.value.message
        assert criterion(code).title in message
        assert "core criterion" in message
        assert "pass or fail" in message  # what to do instead
        assert db_snapshot() == before

    @pytest.mark.parametrize("code", AFFILIATE)
    def test_affiliate_criterion_may_be_not_applicable_with_a_note(
        self, reviewer, code
    ):
        case = held_case(reviewer, affiliate=True)
        services.review_case_record_checks(
            actor=reviewer,
            case_id=case.pk,
            changes=[
                CheckChange(
                    criterion(code).pk, "not_applicable", "Dropped affiliate by phone"
                )
            ],
        )
        assert check(case, code).result == "not_applicable"
        assert check(case, code).note == "Dropped affiliate by phone"

    @pytest.mark.parametrize("code", AFFILIATE)
    def test_not_applicable_without_a_note_is_refused(self, reviewer, code):
        case = held_case(reviewer, affiliate=True)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            record(case, reviewer, **{code: "not_applicable"})
        assert refused.value.code == "note_required"
        assert criterion(code).title in refused.value.message
        assert "note" in refused.value.message
        assert db_snapshot() == before

    def test_unknown_result_is_refused(self, reviewer):
        case = held_case(reviewer)
        with pytest.raises(ActionRefused) as refused:
            record(case, reviewer, terms_compliance="maybe")
        assert "'maybe'" in refused.value.message
        assert criterion("terms_compliance").title in refused.value.message
        assert "pass" in refused.value.message and "fail" in refused.value.message

    def test_criterion_not_on_the_checklist_is_refused(self, reviewer):
        case = held_case(reviewer)  # not an affiliate: no affiliate criteria
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            record(case, reviewer, tastemakers_account="pass")
        assert case.reference in refused.value.message
        assert criterion("tastemakers_account").title in refused.value.message
        assert db_snapshot() == before

    def test_only_the_assignee_records(self, reviewer, reviewer2, senior):
        case = held_case(reviewer2)
        before = db_snapshot()
        for actor in (reviewer, senior):
            with pytest.raises(ActionRefused) as refused:
                record(case, actor, terms_compliance="pass")
            assert refused.value.code == "not_assignee"
            assert case.reference in refused.value.message
            assert "Rob Reviewer holds it" in refused.value.message
        assert db_snapshot() == before

    @pytest.mark.parametrize("state", ["queued", "escalated"])
    def test_only_cases_in_review(self, reviewer, state):
        case = make_case() if state == "queued" else escalated_case(reviewer)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            record(case, reviewer, terms_compliance="pass")
        assert case.reference in refused.value.message
        assert db_snapshot() == before

    def test_decided_case_checklist_is_frozen(self, reviewer):
        case = held_case(reviewer)
        pass_all_checks(case, reviewer)
        services.review_case_approve(actor=reviewer, case_id=case.pk)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            record(case, reviewer, terms_compliance="fail")
        assert refused.value.code == "state"
        assert "approved" in refused.value.message
        assert db_snapshot() == before


# --- decisions ----------------------------------------------------------------------


class TestReviewCaseApprove:
    def test_approves_activates_the_key_and_writes_one_notification(
        self, reviewer, delay_spy
    ):
        case = held_case(reviewer)
        pass_all_checks(case, reviewer)
        before = timezone.now()

        services.review_case_approve(actor=reviewer, case_id=case.pk)

        case = fresh(case)
        assert case.state == ReviewCase.State.APPROVED
        assert case.decided_by == reviewer
        assert case.decided_at >= before
        assert case.key.status == ApiKey.Status.ACTIVE
        notification = Notification.objects.get(case=case)
        assert notification.kind == Notification.Kind.APPROVAL
        assert notification.status == Notification.Status.PENDING
        assert notification.to_email == case.account.contact_email
        assert notification.to_name == case.account.contact_name
        approved, queued = events(case)[-2:]
        assert_event(
            approved,
            audit.CASE_APPROVED,
            actor=reviewer,
            from_state="in_review",
            to_state="approved",
            payload={"key": case.key.platform_key_id, "key_status": "active"},
        )
        assert_event(
            queued,
            audit.EMAIL_QUEUED,
            actor=reviewer,
            payload={"kind": "approval", "notification": notification.pk},
        )

    def test_email_task_is_queued_only_after_commit(
        self, reviewer, delay_spy, django_capture_on_commit_callbacks
    ):
        case = held_case(reviewer)
        pass_all_checks(case, reviewer)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            services.review_case_approve(actor=reviewer, case_id=case.pk)
            delay_spy.assert_not_called()
        assert len(callbacks) == 1
        delay_spy.assert_not_called()  # still nothing until the commit happens
        callbacks[0]()
        notification = Notification.objects.get(case=case)
        delay_spy.assert_called_once_with(notification.pk)

    def test_rolled_back_approval_queues_nothing(
        self, reviewer, delay_spy, django_capture_on_commit_callbacks
    ):
        case = held_case(reviewer)
        pass_all_checks(case, reviewer)
        with (
            django_capture_on_commit_callbacks(execute=True) as callbacks,
            pytest.raises(RuntimeError),
            transaction.atomic(),
        ):
            services.review_case_approve(actor=reviewer, case_id=case.pk)
            raise RuntimeError("the caller's transaction fails afterwards")
        assert callbacks == []
        delay_spy.assert_not_called()
        assert fresh(case).state == ReviewCase.State.IN_REVIEW
        assert not Notification.objects.exists()

    def test_not_applicable_affiliate_criteria_count_as_passed(self, reviewer):
        case = held_case(reviewer, affiliate=True)
        pass_all_checks(case, reviewer)
        services.review_case_record_checks(
            actor=reviewer,
            case_id=case.pk,
            changes=[
                CheckChange(criterion(code).pk, "not_applicable", "Not wanted now")
                for code in ("tastemakers_account", "affiliate_partner_id")
            ],
        )
        services.review_case_approve(actor=reviewer, case_id=case.pk)
        assert fresh(case).state == ReviewCase.State.APPROVED

    def test_refused_while_a_check_is_open_or_failed(self, reviewer, delay_spy):
        case = held_case(reviewer)
        record(case, reviewer, terms_compliance="pass", api_spec_format="fail")
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_approve(actor=reviewer, case_id=case.pk)
        assert refused.value.code == "criteria_not_passed"
        message = refused.value.message
        assert case.reference in message
        assert "“Requests formatted per the API specification” is fail" in message
        assert "is unchecked" in message
        assert criterion("error_handling").title in message
        assert criterion("help_desk_account").title in message
        assert criterion("terms_compliance").title not in message  # it passed
        assert "must pass" in message
        assert db_snapshot() == before
        delay_spy.assert_not_called()

    def test_only_the_assignee_approves(self, reviewer, reviewer2, senior):
        case = held_case(reviewer2)
        pass_all_checks(case, reviewer2)
        before = db_snapshot()
        for actor in (reviewer, senior):
            with pytest.raises(ActionRefused) as refused:
                services.review_case_approve(actor=actor, case_id=case.pk)
            assert refused.value.code == "not_assignee"
            assert "Rob Reviewer holds it" in refused.value.message
            assert "Ask a senior reviewer to reassign it" in refused.value.message
        assert db_snapshot() == before

    def test_former_assignee_after_release_is_told_they_no_longer_hold_it(
        self, reviewer
    ):
        case = held_case(reviewer)
        pass_all_checks(case, reviewer)
        services.review_case_release(actor=reviewer, case_id=case.pk)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_approve(actor=reviewer, case_id=case.pk)
        assert refused.value.code == "not_assignee"
        assert refused.value.message == (
            f"You no longer hold {case.reference}: you released it back to the "
            "queue. Claim it again from the queue to approve it."
        )
        assert db_snapshot() == before

    def test_queued_case_is_refused(self, reviewer):
        case = make_case()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_approve(actor=reviewer, case_id=case.pk)
        assert case.reference in refused.value.message
        assert "Claim it" in refused.value.message

    def test_second_approval_is_refused(self, reviewer):
        case = held_case(reviewer)
        pass_all_checks(case, reviewer)
        services.review_case_approve(actor=reviewer, case_id=case.pk)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_approve(actor=reviewer, case_id=case.pk)
        assert refused.value.code == "state"
        assert "approved" in refused.value.message
        assert db_snapshot() == before
        assert Notification.objects.filter(case=case).count() == 1


class TestReviewCaseDeny:
    def test_denies_with_reasons_frozen_on_the_case(self, reviewer, delay_spy):
        case = failed_case(reviewer, "terms_compliance")
        record(case, reviewer, error_handling="fail")
        branding, unhandled = reason("terms_branding"), reason("errors_unhandled")
        before = timezone.now()

        services.review_case_deny(
            actor=reviewer,
            case_id=case.pk,
            reasons=[
                DenialChoice(branding.pk, "  Logo stretched on the home screen. "),
                DenialChoice(unhandled.pk),
            ],
        )

        case = fresh(case)
        assert case.state == ReviewCase.State.DENIED
        assert case.decided_by == reviewer
        assert case.decided_at >= before
        assert case.key.status == ApiKey.Status.DENIED
        frozen = {row.reason_id: row for row in case.denial_reasons.all()}
        assert set(frozen) == {branding.pk, unhandled.pk}
        assert frozen[branding.pk].title == branding.title
        assert frozen[branding.pk].support_text == branding.support_text
        assert frozen[branding.pk].detail == "Logo stretched on the home screen."
        assert frozen[unhandled.pk].detail == ""
        notification = Notification.objects.get(case=case)
        assert notification.kind == Notification.Kind.DENIAL
        assert notification.status == Notification.Status.PENDING
        denied, queued = events(case)[-2:]
        assert_event(
            denied,
            audit.CASE_DENIED,
            actor=reviewer,
            from_state="in_review",
            to_state="denied",
            payload={
                "key": case.key.platform_key_id,
                "key_status": "denied",
                "reasons": ["errors_unhandled", "terms_branding"],
            },
        )
        assert_event(
            queued,
            audit.EMAIL_QUEUED,
            actor=reviewer,
            payload={"kind": "denial", "notification": notification.pk},
        )

    def test_catalogue_edits_later_do_not_change_the_decision(self, reviewer):
        case = failed_case(reviewer, "terms_compliance")
        branding = reason("terms_branding")
        original = (branding.title, branding.support_text)
        services.review_case_deny(
            actor=reviewer, case_id=case.pk, reasons=[DenialChoice(branding.pk)]
        )
        branding.title = "Renamed reason"
        branding.support_text = "Rewritten text."
        branding.is_active = False
        branding.save()
        row = CaseDenialReason.objects.get(case=case)
        assert (row.title, row.support_text) == original

    def test_email_task_is_queued_only_after_commit(
        self, reviewer, delay_spy, django_capture_on_commit_callbacks
    ):
        case = failed_case(reviewer)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            services.review_case_deny(
                actor=reviewer,
                case_id=case.pk,
                reasons=[DenialChoice(reason("terms_data_use").pk)],
            )
        delay_spy.assert_not_called()
        assert len(callbacks) == 1
        callbacks[0]()
        delay_spy.assert_called_once_with(Notification.objects.get(case=case).pk)

    def test_needs_a_failed_criterion(self, reviewer, delay_spy):
        case = held_case(reviewer)
        pass_all_checks(case, reviewer)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_deny(
                actor=reviewer,
                case_id=case.pk,
                reasons=[DenialChoice(reason("terms_branding").pk)],
            )
        assert refused.value.code == "no_failed_criterion"
        assert case.reference in refused.value.message
        assert "Mark the criteria that failed" in refused.value.message
        assert db_snapshot() == before
        delay_spy.assert_not_called()

    def test_needs_at_least_one_reason(self, reviewer):
        case = failed_case(reviewer)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_deny(actor=reviewer, case_id=case.pk, reasons=[])
        assert refused.value.code == "reason_required"
        assert case.reference in refused.value.message
        assert "Choose at least one denial reason" in refused.value.message
        assert db_snapshot() == before

    def test_retired_reason_is_refused(self, reviewer):
        case = failed_case(reviewer, "terms_compliance")
        retired = reason("terms_branding")
        retired.is_active = False
        retired.save()
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_deny(
                actor=reviewer, case_id=case.pk, reasons=[DenialChoice(retired.pk)]
            )
        assert refused.value.code == "reason_retired"
        assert retired.title in refused.value.message
        assert "choose again" in refused.value.message
        assert db_snapshot() == before

    def test_unknown_reason_is_refused(self, reviewer):
        case = failed_case(reviewer)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_deny(
                actor=reviewer, case_id=case.pk, reasons=[DenialChoice(999999)]
            )
        assert refused.value.code == "reason_retired"
        assert "choose again" in refused.value.message
        assert db_snapshot() == before

    def test_reason_must_belong_to_a_failed_criterion(self, reviewer):
        case = failed_case(reviewer, "terms_compliance")
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_deny(
                actor=reviewer,
                case_id=case.pk,
                reasons=[
                    DenialChoice(reason("terms_branding").pk),
                    DenialChoice(reason("errors_no_backoff").pk),
                ],
            )
        assert refused.value.code == "reason_not_failed"
        message = refused.value.message
        assert reason("errors_no_backoff").title in message
        assert criterion("error_handling").title in message
        assert "Mark that criterion failed or choose another reason" in message
        assert db_snapshot() == before

    def test_only_the_assignee_denies(self, reviewer, reviewer2):
        case = failed_case(reviewer2)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_deny(
                actor=reviewer,
                case_id=case.pk,
                reasons=[DenialChoice(reason("terms_branding").pk)],
            )
        assert refused.value.code == "not_assignee"
        assert db_snapshot() == before

    def test_approved_case_cannot_be_denied(self, reviewer):
        case = held_case(reviewer)
        pass_all_checks(case, reviewer)
        services.review_case_approve(actor=reviewer, case_id=case.pk)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_deny(
                actor=reviewer,
                case_id=case.pk,
                reasons=[DenialChoice(reason("terms_branding").pk)],
            )
        assert "approved" in refused.value.message
        assert db_snapshot() == before


class TestReviewCaseWithdraw:
    @pytest.mark.parametrize("state", ["queued", "in_review", "escalated"])
    def test_withdraws_an_open_case_without_an_email(
        self, reviewer, state, delay_spy, django_capture_on_commit_callbacks
    ):
        if state == "queued":
            case = make_case()
        elif state == "in_review":
            case = held_case(reviewer)
        else:
            case = escalated_case(reviewer)

        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            services.review_case_withdraw(case_id=case.pk, note="key deleted")

        case = fresh(case)
        assert case.state == ReviewCase.State.WITHDRAWN
        assert case.assignee is None
        assert case.key.status == ApiKey.Status.WITHDRAWN
        assert not Notification.objects.exists()
        assert callbacks == []
        delay_spy.assert_not_called()
        assert_event(
            last_event(case),
            audit.CASE_WITHDRAWN,
            actor_kind=CaseEvent.ActorKind.PLATFORM,
            from_state=state,
            to_state="withdrawn",
            payload={"key": case.key.platform_key_id, "note": "key deleted"},
        )

    def test_former_assignee_cannot_decide_a_withdrawn_case(self, reviewer):
        case = held_case(reviewer)
        pass_all_checks(case, reviewer)
        services.review_case_withdraw(case_id=case.pk)
        with pytest.raises(ActionRefused) as refused:
            services.review_case_approve(actor=reviewer, case_id=case.pk)
        assert "withdrawn" in refused.value.message
        assert not Notification.objects.exists()

    @pytest.mark.parametrize("decision", ["approved", "denied", "withdrawn"])
    def test_closed_cases_are_refused(self, reviewer, decision):
        if decision == "approved":
            case = held_case(reviewer)
            pass_all_checks(case, reviewer)
            services.review_case_approve(actor=reviewer, case_id=case.pk)
        elif decision == "denied":
            case = failed_case(reviewer)
            services.review_case_deny(
                actor=reviewer,
                case_id=case.pk,
                reasons=[DenialChoice(reason("terms_branding").pk)],
            )
        else:
            case = services.review_case_withdraw(case_id=make_case().pk)
        before = db_snapshot()
        with pytest.raises(ActionRefused) as refused:
            services.review_case_withdraw(case_id=case.pk)
        assert refused.value.code == "state"
        assert case.reference in refused.value.message
        assert decision in refused.value.message
        assert db_snapshot() == before


class TestReviewCasesReleaseStale:
    @staticmethod
    def idle(case: ReviewCase, minutes: float) -> None:
        """Arrange a claim last touched ``minutes`` ago."""
        ReviewCase.objects.filter(pk=case.pk).update(
            last_activity_at=timezone.now() - timedelta(minutes=minutes)
        )

    def test_idle_claims_go_back_to_the_queue(self, reviewer, reviewer2):
        lease = settings.REVIEW_CLAIM_LEASE.total_seconds() / 60
        stale = held_case(reviewer)
        fresh_claim = held_case(reviewer2)
        escalated = escalated_case(reviewer2)
        self.idle(stale, lease + 1)
        self.idle(fresh_claim, lease - 1)
        idle_since = ReviewCase.objects.get(pk=stale.pk).last_activity_at
        untouched = db_snapshot()["cases"]

        released = services.review_cases_release_stale()

        assert released == [stale.pk]
        stale = fresh(stale)
        assert stale.state == ReviewCase.State.QUEUED
        assert stale.assignee is None
        assert_event(
            last_event(stale),
            audit.CASE_LEASE_EXPIRED,
            actor=None,
            actor_kind=CaseEvent.ActorKind.SYSTEM,
            from_state="in_review",
            to_state="queued",
            payload={
                "former_assignee": reviewer.pk,
                "idle_since": idle_since.isoformat(),
            },
        )
        after = {row[0]: row for row in db_snapshot()["cases"]}
        for row in untouched:
            if row[0] in (fresh_claim.pk, escalated.pk):
                assert after[row[0]] == row

    def test_lease_is_configurable(self, reviewer, settings):
        settings.REVIEW_CLAIM_LEASE = timedelta(minutes=5)
        case = held_case(reviewer)
        self.idle(case, 6)
        assert services.review_cases_release_stale() == [case.pk]

    def test_recording_checks_renews_the_lease(self, reviewer):
        lease = settings.REVIEW_CLAIM_LEASE.total_seconds() / 60
        case = held_case(reviewer)
        self.idle(case, lease + 1)
        record(case, reviewer, terms_compliance="pass")
        assert services.review_cases_release_stale() == []
        assert fresh(case).assignee == reviewer

    def test_periodic_task_runs_the_service(self, reviewer):
        case = held_case(reviewer)
        self.idle(case, settings.REVIEW_CLAIM_LEASE.total_seconds() / 60 + 1)
        assert tasks.review_cases_release_stale() == 1
        assert fresh(case).state == ReviewCase.State.QUEUED

    @pytest.mark.parametrize("action", ["record_checks", "approve", "deny"])
    def test_former_assignee_is_refused_afterwards(self, reviewer, action):
        case = failed_case(reviewer) if action == "deny" else held_case(reviewer)
        if action == "approve":
            pass_all_checks(case, reviewer)
        self.idle(case, settings.REVIEW_CLAIM_LEASE.total_seconds() / 60 + 1)
        services.review_cases_release_stale()
        before = db_snapshot()

        with pytest.raises(ActionRefused) as refused:
            if action == "record_checks":
                record(case, reviewer, error_handling="fail")
            elif action == "approve":
                services.review_case_approve(actor=reviewer, case_id=case.pk)
            else:
                services.review_case_deny(
                    actor=reviewer,
                    case_id=case.pk,
                    reasons=[DenialChoice(reason("terms_branding").pk)],
                )

        assert refused.value.code == "not_assignee"
        message = refused.value.message
        assert case.reference in message
        assert "no longer hold" in message
        assert "idle" in message  # why: the claim lapsed
        assert "Claim it again" in message  # what to do
        assert db_snapshot() == before

    def test_someone_else_may_claim_it_and_the_former_assignee_is_refused(
        self, reviewer, reviewer2
    ):
        case = held_case(reviewer)
        self.idle(case, settings.REVIEW_CLAIM_LEASE.total_seconds() / 60 + 1)
        services.review_cases_release_stale()
        services.review_case_claim_next(actor=reviewer2)
        with pytest.raises(ActionRefused) as refused:
            record(case, reviewer, terms_compliance="pass")
        assert "Rob Reviewer holds it" in refused.value.message


# --- permissions ------------------------------------------------------------------


class TestPermissions:
    """Support, admin, users without a role and inactive users do no case work."""

    ACTIONS = [
        "claim_next",
        "claim",
        "release",
        "escalate",
        "take",
        "reassign",
        "record_checks",
        "approve",
        "deny",
    ]

    @pytest.fixture
    def world(self, reviewer, reviewer2, senior):
        """One case in each state an action needs, held by ``reviewer``."""
        queued = make_case()
        held = held_case(reviewer)
        passed = held_case(reviewer)
        pass_all_checks(passed, reviewer)
        failed = failed_case(reviewer)
        escalated = escalated_case(reviewer)
        return {
            "queued": queued,
            "held": held,
            "passed": passed,
            "failed": failed,
            "escalated": escalated,
            "other_reviewer": reviewer2,
        }

    @staticmethod
    def act(action: str, actor, world: dict):
        if action == "claim_next":
            return services.review_case_claim_next(actor=actor)
        if action == "claim":
            return services.review_case_claim(actor=actor, case_id=world["queued"].pk)
        if action == "release":
            return services.review_case_release(actor=actor, case_id=world["held"].pk)
        if action == "escalate":
            return services.review_case_escalate(
                actor=actor, case_id=world["held"].pk, note="please"
            )
        if action == "take":
            return services.review_case_take(actor=actor, case_id=world["escalated"].pk)
        if action == "reassign":
            return services.review_case_reassign(
                actor=actor,
                case_id=world["held"].pk,
                assignee=world["other_reviewer"],
            )
        if action == "record_checks":
            return record(world["held"], actor, terms_compliance="pass")
        if action == "approve":
            return services.review_case_approve(actor=actor, case_id=world["passed"].pk)
        if action == "deny":
            return services.review_case_deny(
                actor=actor,
                case_id=world["failed"].pk,
                reasons=[DenialChoice(reason("terms_branding").pk)],
            )
        raise AssertionError(action)

    @pytest.mark.parametrize("action", ACTIONS)
    @pytest.mark.parametrize("role", ["support", "admin", "no_role"])
    def test_roles_without_case_work_are_refused(
        self, role, action, world, support, admin_user, delay_spy
    ):
        actor = {
            "support": support,
            "admin": admin_user,
            "no_role": make_user(None, "nobody@staff.example", "Nora Nobody"),
        }[role]
        before = db_snapshot()
        with pytest.raises(PermissionRefused) as refused:
            self.act(action, actor, world)
        assert refused.value.code == "permission"
        assert "Your role does not allow you to" in refused.value.message
        assert "Ask an admin" in refused.value.message
        assert db_snapshot() == before
        delay_spy.assert_not_called()

    @pytest.mark.parametrize("action", ACTIONS)
    def test_inactive_reviewer_is_refused_even_on_their_own_cases(
        self, action, world, reviewer, delay_spy
    ):
        reviewer.is_active = False
        reviewer.save()
        before = db_snapshot()
        with pytest.raises(PermissionRefused) as refused:
            self.act(action, reviewer, world)
        assert "inactive" in refused.value.message
        assert db_snapshot() == before

    @pytest.mark.parametrize("action", ["release", "take", "reassign"])
    def test_inactive_senior_is_refused(self, action, world, senior):
        senior.is_active = False
        senior.save()
        before = db_snapshot()
        with pytest.raises(PermissionRefused):
            self.act(action, senior, world)
        assert db_snapshot() == before
