"""Embedded default: `make run` on a laptop, nothing else running."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)

if not REDIS_URL:  # noqa: F405
    # No beat process in the embedded mode: stale claims and pending emails are
    # swept inline, at most once a minute (reviews/middleware.py).
    MIDDLEWARE = [*MIDDLEWARE, "reviews.middleware.EmbeddedBeatMiddleware"]  # noqa: F405
