"""The product's URLs plus a stock Django admin of ReviewCase at ``/stock/``.

The stock ``ModelAdmin`` is what a team gets by declaring the queue's columns,
search and state filter the ordinary way: no custom queryset, no custom paginator,
search through ``icontains`` joins. It is registered on a second ``AdminSite`` that
exists only in the benchmark's settings.
"""

from django.contrib import admin
from django.http import HttpResponseNotFound
from django.urls import path

from config.urls import urlpatterns as product_urlpatterns
from reviews.models import ReviewCase


class StockReviewCaseAdmin(admin.ModelAdmin):
    # The queue's columns: reference, partner, key, state, assignee, attempt,
    # submission time (the age), affiliate flag.
    list_display = (
        "__str__",
        "account",
        "key",
        "state",
        "assignee",
        "attempt",
        "submitted_at",
        "wants_affiliate",
    )
    list_filter = ("state",)
    # Case reference (the number), partner name, contact email, key id.
    search_fields = (
        "id__exact",
        "account__name",
        "account__contact_email",
        "key__platform_key_id",
    )
    # The queue is worked oldest first.
    ordering = ("submitted_at", "id")
    # Django's own templates: the product overrides the ReviewCase ones by path
    # (admin/reviews/reviewcase/…), which would otherwise apply here too.
    change_list_template = "admin/change_list.html"
    change_form_template = "admin/change_form.html"

    def get_urls(self):
        # The product's site-wide header (admin/base_site.html, which every
        # AdminSite renders) links "Claim next case" by URL name; give the name a
        # target here so the header renders. Nothing in the benchmark calls it.
        def not_here(request):
            return HttpResponseNotFound("Not part of the stock baseline.")

        return [
            path("claim-next/", not_here, name="reviews_reviewcase_claim_next"),
            *super().get_urls(),
        ]


stock_site = admin.AdminSite(name="stock")
stock_site.register(ReviewCase, StockReviewCaseAdmin)

urlpatterns = [path("stock/", stock_site.urls), *product_urlpatterns]
