from reviews import services
from reviews.models import ApiKey, ReviewCase
from tests.factories import make_case, pass_all_checks


def test_claim_check_approve_smoke(reviewer, outbox):
    case = make_case()
    claimed = services.review_case_claim_next(actor=reviewer)
    assert claimed.pk == case.pk
    pass_all_checks(case, reviewer)
    services.review_case_approve(actor=reviewer, case_id=case.pk)
    case.refresh_from_db()
    assert case.state == ReviewCase.State.APPROVED
    assert case.key.status == ApiKey.Status.ACTIVE
