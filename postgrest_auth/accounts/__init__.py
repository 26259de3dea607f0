"""The account operations, one set for every API: they take plain values, run their
transaction, queue their mail and return plain results or raise `ServiceError`. No HTTP here:
the adapters under `postgrest_auth.api` only map request and answer shapes."""

from .context import ClientInfo
from .grants import Grant
from .sessions import Caller

__all__ = ["Caller", "ClientInfo", "Grant"]
