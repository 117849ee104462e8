"""Targets: where a lab runs (local, azure)."""
