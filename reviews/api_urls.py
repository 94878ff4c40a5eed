"""The platform API, mounted at /api/v1/ (DESIGN §6)."""

from django.urls import path

from reviews import api

app_name = "api"

urlpatterns = [
    path("platform-events", api.platform_events, name="platform-events"),
    # <path:> so a key id is found whatever characters the platform uses.
    path("keys/<path:key_id>", api.key_status, name="key-status"),
]
