"""The whole to-do demo on one machine: PostgreSQL, PostgREST, postgrest-auth and nginx.

`python -m demo [--mode cookie]` (or `make demo`) starts it and prints one URL; tests start the same
stack with `with Stack(mode=...) as stack:`.
"""

from .stack import Stack, StackError

__all__ = ["Stack", "StackError"]
