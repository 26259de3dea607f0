-- # Identity, metadata and confirmed addresses
--
-- Every user gets a UUID: it is `sub` in every token (a sequential id would tell anyone how many
-- users there are, and GoTrue's clients expect UUIDs). The integer `id` stays the key, so the
-- Node original's foreign keys keep working. Rows adopted from it get theirs here.

alter table {{schema}}.{{table}}
  add column if not exists uid uuid not null default gen_random_uuid(),
  add column if not exists user_metadata jsonb not null default '{}',
  add column if not exists app_metadata jsonb not null default '{}',
  add column if not exists email_confirmed_at timestamptz,
  add column if not exists new_email text;
comment on column {{schema}}.{{table}}.uid is 'The user''s identity outside the database: `sub` in every token.';
comment on column {{schema}}.{{table}}.user_metadata is 'A JSON object the user may change (at most 16 KiB); in the access token''s claims.';
comment on column {{schema}}.{{table}}.app_metadata is 'A JSON object only the admin API and the command line change; the service keeps provider and providers in it.';
comment on column {{schema}}.{{table}}.email_confirmed_at is 'When the address was proven by a mailed link or code; null while unconfirmed.';
comment on column {{schema}}.{{table}}.new_email is 'An address change waiting for the new address to confirm it (email.confirm).';

create unique index if not exists {{uid_index}} on {{schema}}.{{table}} (uid);

-- Tokens minted by the Node original name their user by username only. Usernames become free
-- again when an account is deleted, so such tokens are honoured only for the accounts that
-- existed when this ran, never for a later account that took the name.
alter table {{schema}}.{{table}} add column if not exists adopted_at timestamptz;
comment on column {{schema}}.{{table}}.adopted_at is 'Set on accounts that existed before this migration: only they accept tokens of the Node original.';
update {{schema}}.{{table}} set adopted_at = now() where adopted_at is null;

-- Accounts that exist when this runs (the Node original's, or ours before confirmation) were
-- never asked to confirm: they count as confirmed.
update {{schema}}.{{table}} set email_confirmed_at = coalesce(created_at, now())
  where email is not null and email_confirmed_at is null;
