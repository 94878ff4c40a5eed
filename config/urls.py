from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("api/v1/", include("reviews.api_urls")),
    path("anymail/", include("anymail.urls")),
    path("", admin.site.urls),
]
