"""On PostgreSQL claim-next is one statement; it must do what the ORM path does."""

import pytest
from django.db import transaction

from reviews import services
from reviews.models import CaseEvent, ReviewCase
from reviews.services.cases import _claim
from tests.factories import make_case

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _fields(case: ReviewCase) -> dict:
    return {
        field.attname: getattr(case, field.attname)
        for field in ReviewCase._meta.concrete_fields
    }


def _event(case: ReviewCase) -> dict:
    event = CaseEvent.objects.get(case=case, code="reviews.case.claimed")
    return {
        "account_id": event.account_id,
        "actor_id": event.actor_id,
        "actor_kind": event.actor_kind,
        "from_state": event.from_state,
        "to_state": event.to_state,
        "payload": event.payload,
    }


def test_one_statement_claim_matches_the_transition_and_audit(reviewer):
    by_statement = make_case()
    by_orm = make_case()

    returned = services.review_case_claim_next(actor=reviewer)
    with transaction.atomic():
        _claim(ReviewCase.objects.select_for_update().get(pk=by_orm.pk), reviewer)

    assert returned.pk == by_statement.pk  # the oldest
    stored = ReviewCase.objects.get(pk=by_statement.pk)
    # The returned object is the stored row, typed like an ORM load.
    assert _fields(returned) == _fields(stored)
    assert returned.assignee == reviewer
    assert returned.integration == by_statement.integration
    orm = ReviewCase.objects.get(pk=by_orm.pk)
    assert stored.state == orm.state == ReviewCase.State.IN_REVIEW
    assert stored.assignee_id == orm.assignee_id == reviewer.pk
    for case in (stored, orm):
        assert case.claimed_at == case.last_activity_at == case.state_changed_at
    expected = _event(orm)
    expected["account_id"] = stored.account_id
    assert _event(stored) == expected


def test_empty_queue_gives_none_and_writes_nothing(reviewer):
    make_case()
    services.review_case_claim_next(actor=reviewer)
    events = CaseEvent.objects.count()
    assert services.review_case_claim_next(actor=reviewer) is None
    assert CaseEvent.objects.count() == events
