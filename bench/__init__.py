"""Benchmark of Review Desk at a million cases (issue 4). Not part of the product."""
