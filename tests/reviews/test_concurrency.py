"""Case services under real concurrency on PostgreSQL.

Every worker runs in its own thread with its own database connection (closed when
the thread ends) and all start together at a ``threading.Barrier``. The assertions
hold for every interleaving: they state the invariant, not who wins.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reviews import audit, services, tasks
from reviews.errors import ActionRefused
from reviews.models import (
    ApiKey,
    CaseDenialReason,
    CaseEvent,
    DenialReason,
    Notification,
    ReviewCase,
)
from reviews.services import CheckChange, DenialChoice
from tests.factories import make_account, make_case, make_user, pass_all_checks

pytestmark = pytest.mark.postgres

# Real commits, so row locks and SKIP LOCKED really interact. serialized_rollback
# restores the seeded roles and catalogue that the flush after each test removes.
concurrent = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ROUNDS = 4  # each race is run on this many cases to sample interleavings
JOIN_TIMEOUT = 60


class Outcome:
    """What one worker ended with: a value, or the refusal it raised."""

    def __init__(self) -> None:
        self.value = None
        self.error: BaseException | None = None

    @property
    def refused(self) -> bool:
        return isinstance(self.error, ActionRefused)

    def __repr__(self) -> str:
        return f"Outcome(value={self.value!r}, error={self.error!r})"


def run_together(*calls: Callable[[], object]) -> list[Outcome]:
    """Run each call in its own thread, all released at once by a barrier."""
    barrier = threading.Barrier(len(calls))
    outcomes = [Outcome() for _ in calls]

    def work(call: Callable[[], object], outcome: Outcome) -> None:
        try:
            barrier.wait(timeout=JOIN_TIMEOUT)
            outcome.value = call()
        except BaseException as error:  # noqa: BLE001 - reported to the test
            outcome.error = error
        finally:
            connection.close()  # this thread's own connection

    threads = [
        threading.Thread(target=work, args=(call, outcome))
        for call, outcome in zip(calls, outcomes, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    for outcome in outcomes:
        # Only refusals are an acceptable way to lose a race.
        if outcome.error is not None and not outcome.refused:
            raise outcome.error
    return outcomes


@pytest.fixture
def dispatched():
    """Notification ids handed to the broker (after commit), from any thread."""
    sent: list[int] = []
    with mock.patch.object(
        tasks.notification_send, "delay", side_effect=lambda pk: sent.append(pk)
    ):
        yield sent


def assert_one_consistent_decision(case: ReviewCase, dispatched: list[int]) -> str:
    """Exactly one outcome, and the key, outbox and audit trail agree with it."""
    case = ReviewCase.objects.select_related("key").get(pk=case.pk)
    notifications = list(Notification.objects.filter(case=case))
    decided = CaseEvent.objects.filter(
        case=case,
        code__in=[audit.CASE_APPROVED, audit.CASE_DENIED, audit.CASE_WITHDRAWN],
    )
    assert decided.count() == 1, list(decided.values_list("code", flat=True))
    if case.state == ReviewCase.State.APPROVED:
        assert case.key.status == ApiKey.Status.ACTIVE
        assert [n.kind for n in notifications] == [Notification.Kind.APPROVAL]
        assert not CaseDenialReason.objects.filter(case=case).exists()
    elif case.state == ReviewCase.State.DENIED:
        assert case.key.status == ApiKey.Status.DENIED
        assert [n.kind for n in notifications] == [Notification.Kind.DENIAL]
        assert CaseDenialReason.objects.filter(case=case).exists()
    else:
        assert case.state == ReviewCase.State.WITHDRAWN
        assert case.key.status == ApiKey.Status.WITHDRAWN
        assert notifications == []
    assert sorted(dispatched) == sorted(n.pk for n in notifications)
    return case.state


def held_passed_case(reviewer) -> ReviewCase:
    case = make_case()
    services.review_case_claim(actor=reviewer, case_id=case.pk)
    pass_all_checks(case, reviewer)
    return case


@concurrent
class TestClaimNextConcurrently:
    def test_two_reviewers_at_the_same_moment_get_different_cases(
        self, reviewer, reviewer2
    ):
        for _ in range(ROUNDS):
            first, second = make_case(), make_case()
            a, b = run_together(
                lambda: services.review_case_claim_next(actor=reviewer),
                lambda: services.review_case_claim_next(actor=reviewer2),
            )
            assert {a.value.pk, b.value.pk} == {first.pk, second.pk}
            assert ReviewCase.objects.get(pk=a.value.pk).assignee == reviewer
            assert ReviewCase.objects.get(pk=b.value.pk).assignee == reviewer2

    def test_a_locked_head_of_queue_is_skipped_without_waiting(
        self, reviewer, reviewer2
    ):
        """While one claim is still uncommitted, the next reviewer gets the next
        case at once (SKIP LOCKED) instead of queueing behind the lock."""
        first, second = make_case(), make_case()
        first_claimed = threading.Event()
        second_done = threading.Event()
        did_not_wait = []

        def slow_claim():
            with transaction.atomic():
                claimed = services.review_case_claim_next(actor=reviewer)
                first_claimed.set()
                # Still holding the row lock: the other claim must finish now.
                did_not_wait.append(second_done.wait(timeout=10))
            return claimed

        def other_claim():
            assert first_claimed.wait(timeout=JOIN_TIMEOUT)
            try:
                return services.review_case_claim_next(actor=reviewer2)
            finally:
                second_done.set()

        a, b = run_together(slow_claim, other_claim)
        assert did_not_wait == [True]
        assert (a.value.pk, b.value.pk) == (first.pk, second.pk)

    def test_eight_reviewers_drain_forty_cases_exactly_once(self):
        cases = [make_case() for _ in range(40)]
        reviewers = [
            make_user("Reviewer", f"r{n}@staff.example", f"Reviewer {n}")
            for n in range(8)
        ]

        def drain(actor):
            def claim_until_empty() -> list[int]:
                mine = []
                while (
                    case := services.review_case_claim_next(actor=actor)
                ) is not None:
                    mine.append(case.pk)
                return mine

            return claim_until_empty

        outcomes = run_together(*(drain(actor) for actor in reviewers))

        claimed = [pk for outcome in outcomes for pk in outcome.value]
        assert sorted(claimed) == sorted(case.pk for case in cases)  # none lost
        assert len(set(claimed)) == len(claimed)  # none twice
        for actor, outcome in zip(reviewers, outcomes, strict=True):
            assert set(
                ReviewCase.objects.filter(assignee=actor).values_list("pk", flat=True)
            ) == set(outcome.value)
        assert not ReviewCase.objects.filter(state=ReviewCase.State.QUEUED).exists()
        events = Counter(
            CaseEvent.objects.filter(code=audit.CASE_CLAIMED).values_list(
                "case_id", flat=True
            )
        )
        assert events == Counter({case.pk: 1 for case in cases})


@concurrent
class TestDecisionsConcurrently:
    def test_two_approvals_of_one_case(self, reviewer, dispatched):
        for _ in range(ROUNDS):
            dispatched.clear()
            case = held_passed_case(reviewer)
            outcomes = run_together(
                *[lambda: services.review_case_approve(actor=reviewer, case_id=case.pk)]
                * 2
            )
            assert sorted(o.refused for o in outcomes) == [False, True]
            assert assert_one_consistent_decision(case, dispatched) == "approved"

    def test_approve_against_a_failed_check_and_deny(self, reviewer, dispatched):
        """Approve (all passed) races the same reviewer marking a criterion failed
        and denying: exactly one decision, one email, key status to match."""
        branding = DenialReason.objects.get(code="terms_branding")
        seen = set()
        for _ in range(ROUNDS):
            dispatched.clear()
            case = held_passed_case(reviewer)
            terms = case.checks.get(criterion__code="terms_compliance")

            def fail_then_deny(case=case, terms=terms):
                services.review_case_record_checks(
                    actor=reviewer,
                    case_id=case.pk,
                    changes=[CheckChange(terms.criterion_id, "fail", "logo")],
                )
                return services.review_case_deny(
                    actor=reviewer,
                    case_id=case.pk,
                    reasons=[DenialChoice(branding.pk)],
                )

            approve, deny = run_together(
                lambda case=case: services.review_case_approve(
                    actor=reviewer, case_id=case.pk
                ),
                fail_then_deny,
            )
            assert approve.refused != deny.refused  # exactly one of them decided
            seen.add(assert_one_consistent_decision(case, dispatched))
        assert seen <= {"approved", "denied"}

    def test_approve_against_withdraw(self, reviewer, dispatched):
        for _ in range(ROUNDS):
            dispatched.clear()
            case = held_passed_case(reviewer)
            approve, withdraw = run_together(
                lambda case=case: services.review_case_approve(
                    actor=reviewer, case_id=case.pk
                ),
                lambda case=case: services.review_case_withdraw(case_id=case.pk),
            )
            assert approve.refused != withdraw.refused
            state = assert_one_consistent_decision(case, dispatched)
            assert state == ("withdrawn" if approve.refused else "approved")

    def test_deny_against_withdraw(self, reviewer, dispatched):
        branding = DenialReason.objects.get(code="terms_branding")
        for _ in range(ROUNDS):
            dispatched.clear()
            case = held_passed_case(reviewer)
            services.review_case_record_checks(
                actor=reviewer,
                case_id=case.pk,
                changes=[
                    CheckChange(
                        case.checks.get(
                            criterion__code="terms_compliance"
                        ).criterion_id,
                        "fail",
                    )
                ],
            )
            deny, withdraw = run_together(
                lambda case=case: services.review_case_deny(
                    actor=reviewer, case_id=case.pk, reasons=[DenialChoice(branding.pk)]
                ),
                lambda case=case: services.review_case_withdraw(case_id=case.pk),
            )
            assert deny.refused != withdraw.refused
            state = assert_one_consistent_decision(case, dispatched)
            assert state == ("withdrawn" if deny.refused else "denied")


@concurrent
class TestClaimAgainstWithdraw:
    @pytest.mark.parametrize("claim", ["claim", "claim_next"])
    def test_case_ends_withdrawn_whoever_wins(self, reviewer, dispatched, claim):
        for _ in range(ROUNDS):
            case = make_case()

            def claim_it(case=case):
                if claim == "claim":
                    return services.review_case_claim(actor=reviewer, case_id=case.pk)
                return services.review_case_claim_next(actor=reviewer)

            claimed, withdrawn = run_together(
                claim_it,
                lambda case=case: services.review_case_withdraw(case_id=case.pk),
            )
            assert withdrawn.error is None  # an open case is always withdrawable
            case = ReviewCase.objects.select_related("key").get(pk=case.pk)
            assert case.state == ReviewCase.State.WITHDRAWN
            assert case.assignee is None
            assert case.key.status == ApiKey.Status.WITHDRAWN
            events = CaseEvent.objects.filter(case=case)
            withdraw_event = events.get(code=audit.CASE_WITHDRAWN)
            got_it = claimed.value is not None and not claimed.refused
            if got_it:  # claimed first, then withdrawn from review
                assert claimed.value.pk == case.pk
                assert events.filter(code=audit.CASE_CLAIMED).count() == 1
                assert withdraw_event.from_state == "in_review"
            else:  # withdrawn first: the claim was refused or found nothing
                assert not events.filter(code=audit.CASE_CLAIMED).exists()
                assert withdraw_event.from_state == "queued"
            assert dispatched == []


@concurrent
class TestLeaseAgainstTheAssignee:
    def test_stale_sweep_racing_a_late_checklist_edit(self, reviewer):
        for _ in range(ROUNDS):
            case = make_case()
            services.review_case_claim(actor=reviewer, case_id=case.pk)
            idle = settings.REVIEW_CLAIM_LEASE + timedelta(minutes=1)
            ReviewCase.objects.filter(pk=case.pk).update(
                last_activity_at=timezone.now() - idle
            )
            terms = case.checks.get(criterion__code="terms_compliance")
            edit, sweep = run_together(
                lambda case=case, terms=terms: services.review_case_record_checks(
                    actor=reviewer,
                    case_id=case.pk,
                    changes=[CheckChange(terms.criterion_id, "pass")],
                ),
                services.review_cases_release_stale,
            )
            case.refresh_from_db()
            terms.refresh_from_db()
            expired = CaseEvent.objects.filter(
                case=case, code=audit.CASE_LEASE_EXPIRED
            ).count()
            if edit.refused:  # the sweep won: back in the queue, nothing recorded
                assert "no longer hold" in edit.error.message
                assert case.state == ReviewCase.State.QUEUED
                assert (terms.result, expired) == ("unchecked", 1)
            else:  # the edit won (lease renewed) or came in before the sweep
                # The sweep either skipped the locked row or saw the renewed lease.
                assert terms.result == "pass"
                assert case.pk not in sweep.value
                assert case.state == ReviewCase.State.IN_REVIEW
                assert expired == 0


@pytest.mark.django_db
class TestClaimQueryPlan:
    """The claim query reads the head of an index, not the whole case table."""

    def test_claim_next_uses_an_index(self, reviewer):
        account = make_account()
        archive_key = ApiKey.objects.create(
            platform_key_id="pk_archive", account=account
        )
        now = timezone.now()
        ReviewCase.objects.bulk_create(
            ReviewCase(
                key=archive_key,
                account=account,
                state=ReviewCase.State.APPROVED if n % 2 else ReviewCase.State.DENIED,
                submitted_at=now - timedelta(minutes=n),
            )
            for n in range(10000)
        )
        queued_keys = ApiKey.objects.bulk_create(
            ApiKey(platform_key_id=f"pk_q{n}", account=account) for n in range(200)
        )
        ReviewCase.objects.bulk_create(
            ReviewCase(key=key, account=account, submitted_at=now - timedelta(hours=n))
            for n, key in enumerate(queued_keys)
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE reviews_reviewcase")

        with CaptureQueriesContext(connection) as queries:
            claimed = services.review_case_claim_next(actor=reviewer)
        assert claimed.key == queued_keys[-1]  # the oldest
        claim_sql = [
            q["sql"]
            for q in queries.captured_queries
            if "reviews_reviewcase" in q["sql"] and "SKIP LOCKED" in q["sql"]
        ]
        assert len(claim_sql) == 1

        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + claim_sql[0])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        print(plan)  # shown with -s; the report quotes it
        assert "Seq Scan on reviews_reviewcase" not in plan, plan
        assert "Index" in plan and "reviews_reviewcase" in plan, plan

    def test_stale_claim_sweep_uses_an_index(self, reviewer):
        account = make_account()
        archive_key = ApiKey.objects.create(
            platform_key_id="pk_archive", account=account
        )
        ReviewCase.objects.bulk_create(
            ReviewCase(
                key=archive_key, account=account, state=ReviewCase.State.APPROVED
            )
            for _ in range(10000)
        )
        make_case(account=account)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE reviews_reviewcase")
        with CaptureQueriesContext(connection) as queries:
            services.review_cases_release_stale()
        sweep_sql = [
            q["sql"] for q in queries.captured_queries if "SKIP LOCKED" in q["sql"]
        ]
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sweep_sql[0])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Seq Scan on reviews_reviewcase" not in plan, plan
