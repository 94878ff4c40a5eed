"""Reads the UI needs, written for large tables (indexed filters, no per-row queries).

- ``cases``: the queue and the case page;
- ``lookup``: support lookup.
"""

from .cases import *  # noqa: F403
from .lookup import *  # noqa: F403
