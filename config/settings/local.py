"""Embedded default: `make run` on a laptop, nothing else running."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
