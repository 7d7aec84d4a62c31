"""Persistence: engine, schema, migrations and intent-named queries."""
