"""Shared utilities below every other project package: errors and file helpers."""
