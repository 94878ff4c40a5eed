"""Seed the six launch criteria and a starter catalogue of denial reasons."""

from django.db import migrations

CRITERIA = [
    (
        "terms_compliance",
        "100% compliance with the terms & conditions",
        "all",
        "Open the partner's app and listing. The integration must follow every "
        "clause of the Developer Platform terms: branding, data use, no resale of "
        "catalog data, no scraping. Any violation is a fail.",
    ),
    (
        "api_spec_format",
        "Requests formatted per the API specification",
        "all",
        "Look at the partner's development traffic. Requests go to the documented "
        "endpoints (POST /idp/v1/products/products_link, POST /idp/v1/products/recipe, "
        "GET /idp/v1/retailers) with the documented bodies; repeated 400s with error "
        "code 1001 (invalid parameter) mean a fail.",
    ),
    (
        "error_handling",
        "Error handling for the implemented endpoints",
        "all",
        "For each implemented endpoint the app must handle the error envelope "
        "{error:{message,code}, meta:{key}} and HTTP 400/401/403/404/408/429/500/503 "
        "gracefully: a clear message to the user, backoff on 429/503, no crash.",
    ),
    (
        "help_desk_account",
        "Enterprise Help Desk account exists",
        "all",
        "The partner has an Enterprise Help Desk account for technical support; its id "
        "is on the partner record. Missing or unknown id is a fail.",
    ),
    (
        "tastemakers_account",
        "Tastemakers (affiliate tracking) account exists",
        "affiliate",
        "Partners who want affiliate payments need a Tastemakers account; check the "
        "account id on the partner record against Tastemakers.",
    ),
    (
        "affiliate_partner_id",
        "Correct affiliate ID on requests",
        "affiliate",
        "Generated links carry the partner's id in utm_content as partnerid-<id>. "
        "It must match the affiliate partner id on the partner record.",
    ),
]

REASONS = [
    (
        "terms_compliance",
        "terms_branding",
        "Branding guidelines not followed",
        "Your app uses the platform's name or logo in a way the brand guidelines do not "
        "allow. Follow the brand guidelines in the developer docs, then request review "
        "again.",
    ),
    (
        "terms_compliance",
        "terms_data_use",
        "Catalog data used outside the terms",
        "Your integration stores, resells or displays product data in ways the terms "
        "and conditions do not permit. Remove that use, then request review again.",
    ),
    (
        "api_spec_format",
        "spec_invalid_parameters",
        "Requests rejected as invalid",
        "Many of your development requests were rejected with error code 1001 (invalid "
        "parameter). Check each request body against the API reference for the "
        "endpoint, fix the fields named in the error messages, then request review "
        "again.",
    ),
    (
        "api_spec_format",
        "spec_wrong_endpoint",
        "Requests to undocumented endpoints",
        "Your integration calls endpoints or methods that are not in the API "
        "specification. Use only the documented endpoints, then request review again.",
    ),
    (
        "error_handling",
        "errors_unhandled",
        "API errors not handled",
        "When the API answers with an error (HTTP 4xx or 5xx with an error envelope), "
        "your app does not show a useful message or recover. Handle the error envelope "
        "for every endpoint you use, then request review again.",
    ),
    (
        "error_handling",
        "errors_no_backoff",
        "No backoff on rate limiting",
        "Your integration retries immediately after HTTP 429 or 503. Back off "
        "(wait and retry with increasing delays), then request review again.",
    ),
    (
        "help_desk_account",
        "helpdesk_missing",
        "No Enterprise Help Desk account",
        "We could not find an Enterprise Help Desk account for your organisation. "
        "Create one so our technical support can reach you, then request review again.",
    ),
    (
        "help_desk_account",
        "helpdesk_mismatch",
        "Help Desk account belongs to someone else",
        "The Enterprise Help Desk account id on your developer account does not belong "
        "to your organisation. Update it to your own account, then request review again.",
    ),
    (
        "tastemakers_account",
        "tastemakers_missing",
        "No Tastemakers account",
        "Affiliate payments need a Tastemakers account, and we could not find yours. "
        "Create one and add its id to your developer account, then request review again.",
    ),
    (
        "tastemakers_account",
        "tastemakers_inactive",
        "Tastemakers account not active",
        "Your Tastemakers account is not active yet. Finish its setup, then request "
        "review again.",
    ),
    (
        "affiliate_partner_id",
        "affiliate_id_missing",
        "Affiliate ID missing from links",
        "Links your app generates carry no partnerid-<id> in utm_content, so orders "
        "cannot be attributed to you. Add it, then request review again.",
    ),
    (
        "affiliate_partner_id",
        "affiliate_id_wrong",
        "Wrong affiliate ID on links",
        "Links your app generates carry an affiliate id that is not yours. Use the "
        "partner id shown in your Tastemakers account, then request review again.",
    ),
]


def seed(apps, schema_editor):
    Criterion = apps.get_model("reviews", "Criterion")
    DenialReason = apps.get_model("reviews", "DenialReason")
    by_code = {}
    for order, (code, title, applies_to, guidance) in enumerate(CRITERIA, start=1):
        by_code[code], _ = Criterion.objects.get_or_create(
            code=code,
            defaults={
                "title": title,
                "applies_to": applies_to,
                "guidance": guidance,
                "order": order * 10,
            },
        )
    for order, (criterion, code, title, text) in enumerate(REASONS, start=1):
        DenialReason.objects.get_or_create(
            code=code,
            defaults={
                "criterion": by_code[criterion],
                "title": title,
                "support_text": text,
                "order": order * 10,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("reviews", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
