"""The one way out for side effects: tasks are queued only after commit."""

from __future__ import annotations

from typing import Any

from django.db import transaction


def enqueue_after_commit(task: Any, *args: Any) -> None:
    """Queue ``task.delay(*args)`` once the current transaction commits.

    Nothing is queued if it rolls back. Outside a transaction it runs at once.
    In the embedded mode the task then runs in this process (eager Celery).
    """
    transaction.on_commit(lambda: task.delay(*args), robust=True)
