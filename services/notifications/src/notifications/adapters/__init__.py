"""Database and SMTP adapters."""
