"""postgrest-auth: an authentication server for PostgREST."""

__version__ = "0.1.0"
