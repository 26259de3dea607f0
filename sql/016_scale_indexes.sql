-- # Indexes that a million accounts need
--
-- Found by tests/test_scale.py (a million accounts, three million sessions): these statements
-- read a whole big table.
--
-- A mailed code verified by address (GoTrue /verify, /resend) finds the account that has the
-- address or waits to move to it (`email = $1 or new_email = $1`): without an index on
-- new_email that is a scan of every account. Few accounts wait for a change, so the index is
-- partial and small.
--
-- Deleting an account drops its unsent mail (`sent_at is null and lower(recipient) = any($1)`):
-- without an index that reads the whole outbox, a month of sent mail (email.sent_retention).
-- Unsent mail is little, so the index is partial and small.
--
-- The janitor deletes sessions that ended a day ago (`coalesce(revoked_at, expires_at) < …`)
-- and mailed tokens spent or expired a day ago (`coalesce(used_at, expires_at) < …`): without
-- an index on those expressions each sweep reads every session and every token. It finds what
-- ended since the last sweep. The sessions' index replaces the one on expires_at (003), which
-- no statement reads any more: every refresh moves expires_at, so an index kept for nothing
-- costs each refresh a write.

create index if not exists {{new_email_index}} on {{schema}}.{{table}} (new_email)
  where new_email is not null;
comment on index {{schema}}.{{new_email_index}} is 'Mailed codes verified by address find an address change waiting for it.';

create index if not exists outbox_unsent_recipient_idx
  on {{schema}}.outbox (lower(recipient)) where sent_at is null;
comment on index {{schema}}.outbox_unsent_recipient_idx is 'Deleting an account drops the mail not yet sent to its addresses.';

create index if not exists sessions_ended_at_idx
  on {{schema}}.sessions ((coalesce(revoked_at, expires_at)));
comment on index {{schema}}.sessions_ended_at_idx is 'The janitor deletes sessions that ended (revoked, else expired) a day ago.';
drop index if exists {{schema}}.sessions_expires_at_idx;

create index if not exists one_time_tokens_ended_at_idx
  on {{schema}}.one_time_tokens ((coalesce(used_at, expires_at)));
comment on index {{schema}}.one_time_tokens_ended_at_idx is 'The janitor deletes mailed tokens spent (else expired) a day ago.';
