"""Stages of the ingest pipeline; refresh.py wires them together."""
