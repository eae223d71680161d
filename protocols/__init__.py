"""Measurement procedures written against instrument roles, and their analysis."""
