"""The janitor: deletes what has expired and erases what is kept too long, every
`sessions.cleanup_interval` seconds."""

from __future__ import annotations

import asyncio
import logging

from .services import Services

log = logging.getLogger(__name__)

SENT_BATCH = 5000


async def sweep(services: Services) -> None:
    """Run sweep_once every so often; and keep the dummy hash at the stored hashes' most
    common cost as logins rehash them."""
    settings = services.settings
    while True:
        await asyncio.sleep(settings.sessions.cleanup_interval)
        try:
            await sweep_once(services)
        except Exception as exc:
            log.warning("janitor: %s", type(exc).__name__)
        try:
            async with services.pool.acquire() as conn:
                stored_cost = await services.store.most_common_password_cost(conn)
            if await services.hasher.set_dummy_cost(stored_cost):
                log.info("janitor: dummy hash now at cost %s", services.hasher.dummy_cost)
        except Exception as exc:
            log.warning("janitor: dummy hash cost: %s", type(exc).__name__)


async def sweep_once(services: Services) -> None:
    """Delete sessions ended a day ago and rate-limit windows long past; erase what failed
    mail says after `email.failed_retention` days and delete sent mail after
    `email.sent_retention` days."""
    settings, store = services.settings, services.store
    async with services.pool.acquire() as conn:
        removed = await store.delete_dead_sessions(conn, 86400)
        await store.delete_old_rate_limits(conn, 86400)
        await store.delete_old_audit_events(conn, settings.audit.retention_days)
        await store.delete_old_one_time_tokens(conn, 86400)
        await store.delete_old_flow_states(conn)
        await services.identities.delete_old_flows(conn)
        await services.factors.delete_old_challenges(conn, 86400)
        erased = await store.erase_failed_mail(conn, settings.email.failed_retention)
        deleted = 0
        while True:  # in batches: each a short statement, even on a first sweep of years of mail
            batch = await store.delete_sent_mail(conn, settings.email.sent_retention, SENT_BATCH)
            deleted += batch
            if batch < SENT_BATCH:
                break
    log.info(
        "janitor: removed %s ended sessions, erased %s failed mail, deleted %s sent mail",
        removed,
        erased,
        deleted,
    )
