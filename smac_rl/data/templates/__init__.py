"""Pilot site templates (package data, illustrative configurations)."""
