"""Tiny pure helpers open to every layer."""
