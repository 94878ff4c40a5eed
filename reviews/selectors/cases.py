"""Queue and case-page reads (issue 3)."""

__all__: list[str] = []
