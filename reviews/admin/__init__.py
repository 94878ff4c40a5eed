"""The reviewer UI: a thin layer over services and selectors.

- ``cases``: the queue (review cases list), the case page and its actions;
- ``lookup``: support lookup, notifications (resend), accounts and keys (read-only);
- ``catalogue``: criteria and denial reasons (admins only).
"""

from django.contrib import admin

admin.site.site_header = "Review Desk"
admin.site.site_title = "Review Desk"
admin.site.index_title = "Production key reviews"

from . import cases, catalogue, lookup  # noqa: E402, F401
