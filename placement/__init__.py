"""Placement: access rules, the matcher and the hold logic (pure, no I/O), and the hold service."""
