"""Model invariants enforced by the database, protected FSM fields, references."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django_fsm import TransitionNotAllowed

from reviews import services
from reviews.models import (
    ApiKey,
    CaseDenialReason,
    CheckResult,
    Criterion,
    DenialReason,
    Notification,
    ReviewCase,
    case_pk_from_reference,
    case_reference,
)
from tests.factories import make_case, pass_all_checks

pytestmark = pytest.mark.django_db


def violates_constraint(write) -> None:
    """``write`` must be refused by the database itself."""
    with pytest.raises(IntegrityError), transaction.atomic():
        write()


class TestReviewCaseConstraints:
    def test_second_open_case_for_a_key_is_refused(self):
        first = make_case()
        for state in ReviewCase.OPEN_STATES:
            violates_constraint(
                lambda state=state: ReviewCase.objects.create(
                    key=first.key, account=first.account, state=state
                )
            )
        assert ReviewCase.objects.filter(key=first.key).count() == 1

    def test_open_case_is_allowed_once_the_first_is_closed(self, reviewer):
        first = make_case()
        services.review_case_withdraw(case_id=first.pk)
        second = ReviewCase.objects.create(key=first.key, account=first.account)
        assert second.state == ReviewCase.State.QUEUED
        for state in ReviewCase.DECIDED_STATES:
            ReviewCase.objects.create(key=first.key, account=first.account, state=state)

    def test_queued_case_with_an_assignee_is_refused(self, reviewer):
        case = make_case()
        violates_constraint(
            lambda: ReviewCase.objects.filter(pk=case.pk).update(assignee=reviewer)
        )
        violates_constraint(
            lambda: ReviewCase.objects.create(
                key=ApiKey.objects.create(platform_key_id="pk_x", account=case.account),
                account=case.account,
                assignee=reviewer,
            )
        )

    def test_other_states_may_have_an_assignee(self, reviewer):
        case = make_case()
        services.review_case_claim(actor=reviewer, case_id=case.pk)
        assert ReviewCase.objects.get(pk=case.pk).assignee == reviewer


class TestCheckResultConstraints:
    def test_one_check_per_case_and_criterion(self):
        case = make_case()
        existing = case.checks.first()
        violates_constraint(
            lambda: CheckResult.objects.create(
                case=case, criterion_id=existing.criterion_id
            )
        )

    def test_same_criterion_on_another_case_is_fine(self):
        first, second = make_case(), make_case()
        criterion = Criterion.objects.get(code="terms_compliance")
        assert first.checks.filter(criterion=criterion).exists()
        assert second.checks.filter(criterion=criterion).exists()


class TestNotificationConstraints:
    def test_one_notification_per_case_and_kind(self, reviewer):
        case = make_case()
        services.review_case_claim(actor=reviewer, case_id=case.pk)
        pass_all_checks(case, reviewer)
        services.review_case_approve(actor=reviewer, case_id=case.pk)
        assert Notification.objects.filter(case=case).count() == 1
        violates_constraint(
            lambda: Notification.objects.create(
                case=case, kind=Notification.Kind.APPROVAL, to_email="x@example.com"
            )
        )
        # A different kind is a different row (not reachable through the services).
        Notification.objects.create(
            case=case, kind=Notification.Kind.DENIAL, to_email="x@example.com"
        )


class TestCaseDenialReasonConstraints:
    def test_one_row_per_case_and_reason(self):
        case = make_case()
        reason = DenialReason.objects.get(code="terms_branding")
        CaseDenialReason.objects.create(
            case=case, reason=reason, title=reason.title, support_text="x"
        )
        violates_constraint(
            lambda: CaseDenialReason.objects.create(
                case=case, reason=reason, title=reason.title, support_text="y"
            )
        )


class TestProtectedStateFields:
    def test_case_state_cannot_be_assigned(self):
        case = make_case()
        with pytest.raises(AttributeError):
            case.state = ReviewCase.State.APPROVED
        assert ReviewCase.objects.get(pk=case.pk).state == ReviewCase.State.QUEUED

    def test_key_status_cannot_be_assigned(self):
        key = make_case().key
        with pytest.raises(AttributeError):
            key.status = ApiKey.Status.ACTIVE
        assert ApiKey.objects.get(pk=key.pk).status == ApiKey.Status.PENDING_APPROVAL

    def test_loaded_rows_are_protected_too(self):
        case = ReviewCase.objects.get(pk=make_case().pk)
        with pytest.raises(AttributeError):
            case.state = ReviewCase.State.DENIED

    def test_refresh_from_db_still_works(self, reviewer):
        case = make_case()
        services.review_case_claim(actor=reviewer, case_id=case.pk)
        case.refresh_from_db()
        assert case.state == ReviewCase.State.IN_REVIEW

    @pytest.mark.parametrize(
        "transition", ["release", "escalate", "take", "approve", "deny"]
    )
    def test_transition_from_the_wrong_state_is_refused(self, reviewer, transition):
        case = make_case()  # queued
        kwargs = {
            "escalate": {"note": "x"},
            "take": {"reviewer": reviewer},
            "approve": {"reviewer": reviewer},
            "deny": {"reviewer": reviewer},
        }.get(transition, {})
        with pytest.raises(TransitionNotAllowed):
            getattr(case, transition)(**kwargs)
        assert case.state == ReviewCase.State.QUEUED

    def test_decided_key_cannot_be_activated_again(self):
        key = make_case().key
        key.deny()
        with pytest.raises(TransitionNotAllowed):
            key.activate()
        key.resubmit()
        key.activate()
        assert key.status == ApiKey.Status.ACTIVE


class TestReferences:
    @pytest.mark.parametrize(
        ("pk", "reference"),
        [(1, "RC-000001"), (123, "RC-000123"), (999999, "RC-999999")],
    )
    def test_reference_from_pk(self, pk, reference):
        assert case_reference(pk) == reference

    def test_long_pks_keep_every_digit(self):
        assert case_reference(1234567) == "RC-1234567"
        assert case_pk_from_reference(case_reference(1234567)) == 1234567

    @pytest.mark.parametrize(
        ("text", "pk"),
        [
            ("RC-000123", 123),
            ("rc-000123", 123),
            ("RC000123", 123),
            ("RC-123", 123),
            ("  RC-000123\n", 123),
            ("RC-1234567", 1234567),
            ("RC-0000000000000000000042", 42),
        ],
    )
    def test_pk_from_reference(self, text, pk):
        assert case_pk_from_reference(text) == pk

    @pytest.mark.parametrize(
        "text",
        [
            "",
            None,
            "RC-",
            "RC",
            "123",
            "000123",
            "RC-12a",
            "RC--123",
            "RC 123",
            "XRC-123",
            "RC-123 and more",
            "RC-000000",  # no case has pk 0
            "RC-" + "9" * 19,  # beyond any database id
        ],
    )
    def test_anything_else_is_not_a_reference(self, text):
        assert case_pk_from_reference(text) is None

    def test_round_trip(self):
        case = make_case()
        assert str(case) == case.reference
        assert case_pk_from_reference(case.reference) == case.pk
        assert ReviewCase(pk=None).reference == "RC-(new)"
