"""Support lookup reads (issue 3)."""

__all__: list[str] = []
