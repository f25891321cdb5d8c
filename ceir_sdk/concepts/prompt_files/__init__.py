"""Bundled prompt files (package data)."""
