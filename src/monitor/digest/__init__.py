"""Daily digests: build (which stories, grouped how), render (Jinja2, text and HTML), send (SMTP, ledger)."""
