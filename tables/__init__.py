"""Faust tables: only what the topics can rebuild."""
