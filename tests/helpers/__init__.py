"""Helpers and fixtures shared by unit and integration test modules (imported, never collected)."""
