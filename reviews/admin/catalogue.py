"""Filled by the reviewer UI work (issue 3)."""
