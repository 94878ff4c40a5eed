from django.contrib import admin
from django.urls import include, path

from reviews.admin.home import home_urlpatterns
from reviews.admin.lookup import lookup_urlpatterns

urlpatterns = [
    path("api/v1/", include("reviews.api_urls")),
    path("anymail/", include("anymail.urls")),
    *lookup_urlpatterns,  # /reviews/lookup/ (support), before the admin's own URLs
    *home_urlpatterns,  # "/" -> the queue (reviewers) or the lookup (support)
    path("", admin.site.urls),
]
