"""Offline replay of logged pages: off-policy estimators and click models."""
