"""`monitor serve`: the read-only HTTP API, the web pages, the Atom feeds and exports (the only FastAPI user)."""
