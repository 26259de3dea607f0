"""The janitor: deletes what has expired, every `sessions.cleanup_interval` seconds."""

from __future__ import annotations

import asyncio
import logging

from .services import Services

log = logging.getLogger(__name__)


async def sweep(services: Services) -> None:
    """Delete sessions ended a day ago and rate-limit windows long past, every so often; and
    keep the dummy hash at the stored hashes' most common cost as logins rehash them."""
    settings = services.settings
    while True:
        await asyncio.sleep(settings.sessions.cleanup_interval)
        try:
            async with services.pool.acquire() as conn:
                removed = await services.store.delete_dead_sessions(conn, 86400)
                await services.store.delete_old_rate_limits(conn, 86400)
                await services.store.delete_old_audit_events(conn, settings.audit.retention_days)
                await services.store.delete_old_one_time_tokens(conn, 86400)
                await services.store.delete_old_flow_states(conn)
                await services.identities.delete_old_flows(conn)
                await services.factors.delete_old_challenges(conn, 86400)
            log.info("janitor: removed %s ended sessions", removed)
        except Exception as exc:
            log.warning("janitor: %s", type(exc).__name__)
        try:
            async with services.pool.acquire() as conn:
                stored_cost = await services.store.most_common_password_cost(conn)
            if await services.hasher.set_dummy_cost(stored_cost):
                log.info("janitor: dummy hash now at cost %s", services.hasher.dummy_cost)
        except Exception as exc:
            log.warning("janitor: dummy hash cost: %s", type(exc).__name__)
