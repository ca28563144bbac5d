"""Handlers and ports."""
