"""Integration tests and their helpers (a real Label Studio server, headless Chromium)."""
