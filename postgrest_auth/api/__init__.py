"""HTTP adapters over the account operations: each maps its request and answer shapes only."""
