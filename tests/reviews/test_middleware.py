"""Embedded mode runs the beat schedule inline (no celery beat process there)."""

from datetime import timedelta

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import timezone

from reviews import services
from reviews.middleware import EmbeddedBeatMiddleware
from reviews.models import CaseEvent, ReviewCase
from tests.factories import make_case

pytestmark = pytest.mark.django_db


def test_stale_claims_go_back_to_the_queue_once_due(reviewer, settings):
    case = make_case()
    services.review_case_claim(actor=reviewer, case_id=case.pk)
    idle = timezone.now() - settings.REVIEW_CLAIM_LEASE - timedelta(minutes=1)
    ReviewCase.objects.filter(pk=case.pk).update(last_activity_at=idle)
    middleware = EmbeddedBeatMiddleware(lambda request: HttpResponse("ok"))

    middleware(RequestFactory().get("/"))  # not due yet: nothing runs
    case.refresh_from_db()
    assert case.state == ReviewCase.State.IN_REVIEW

    middleware._due = 0  # a minute has passed
    response = middleware(RequestFactory().get("/"))

    assert response.content == b"ok"
    case.refresh_from_db()
    assert case.state == ReviewCase.State.QUEUED
    assert case.assignee is None
    assert CaseEvent.objects.filter(
        case=case, code="reviews.case.lease_expired", actor_kind="system"
    ).exists()
