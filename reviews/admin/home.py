"""The site root sends each role to where its day starts.

Reviewers land on the queue, support on the lookup; everyone else (admins) gets the
admin index. Anonymous users go to the login page first (admin_view).
"""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse


def home_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    if user.has_perm("reviews.work_reviewcase"):
        return redirect(reverse("admin:reviews_reviewcase_changelist"))
    if user.has_perm("reviews.lookup_reviewcase"):
        return redirect(reverse("reviews_lookup"))
    return admin.site.index(request)


home_urlpatterns = [path("", admin.site.admin_view(home_view), name="home")]
