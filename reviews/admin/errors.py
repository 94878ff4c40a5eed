"""Refusals as pages people can read: 403 reasons and a worded 405.

403 and 404 pages come from Django's error views with ``templates/403.html`` and
``templates/404.html``; a view says why it refuses by the message it gives
``PermissionDenied``. ``method_not_allowed`` is for addresses that only take a
form's POST (or only a GET) and were opened the other way, e.g. from history.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.template.response import TemplateResponse

# Why a role is refused, by what the page or action is for.
QUEUE_IS_FOR = (
    "The review queue and case pages are for reviewers, senior reviewers and support."
)
LOOKUP_IS_FOR = (
    "This page is for support staff: looking up partners' cases is part of the "
    "Support role."
)
RESEND_IS_FOR = "Resending decision emails is for support staff."
CLAIM_IS_FOR = "Claiming cases is for reviewers."


def method_not_allowed(
    request: HttpRequest,
    allowed: list[str],
    *,
    text: str,
    back_url: str = "",
    back_label: str = "",
) -> TemplateResponse:
    """405 with the ``Allow`` header and a page saying what to do instead."""
    response = TemplateResponse(
        request,
        "405.html",
        {"exception": text, "back_url": back_url, "back_label": back_label},
        status=405,
    )
    response["Allow"] = ", ".join(allowed)
    return response
