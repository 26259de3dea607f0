-- # One-time tokens, and accounts without a username or password
--
-- A mail that carries a secret (confirm the address, sign in, recover, confirm a new address,
-- accept an invitation) carries a link token and a 6-digit code. Both are stored here only as
-- hashes: the link token (256 random bits) as SHA-256; the code as a keyed HMAC, because a plain
-- hash of one of a million codes is found offline in a second. One row per account and kind: a
-- newer mail of a kind replaces the row, so it supersedes the older link and code. A row is
-- spent by its first use (`used_at`) and dies at `expires_at` (`email.otp_exp`).

create table if not exists {{schema}}.one_time_tokens (
  id bigint generated always as identity primary key,
  kind text not null
    check (kind in ('signup', 'magiclink', 'recovery', 'email_change', 'invite')),
  user_id integer not null references {{schema}}.{{table}} (id) on delete cascade,
  sent_to text not null,
  token_hash bytea not null,
  code_hash bytea not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  used_at timestamptz,
  unique (user_id, kind)
);
comment on table {{schema}}.one_time_tokens is 'Mailed one-time secrets (link and 6-digit code), stored as hashes only; one live row per account and kind. The service reads and writes it; PostgREST roles have no access.';
comment on column {{schema}}.one_time_tokens.kind is 'What verifying it does: signup (confirms the address), magiclink (signs in), recovery (signs in to set a new password), email_change (moves the account to sent_to), invite.';
comment on column {{schema}}.one_time_tokens.sent_to is 'The address the mail went to (lowercased): the token is good only while the account still has it (email_change: while new_email is it).';
comment on column {{schema}}.one_time_tokens.token_hash is 'SHA-256 of the link''s token_hash parameter (32 random bytes, urlsafe).';
comment on column {{schema}}.one_time_tokens.code_hash is 'HMAC-SHA-256 of the 6-digit code, keyed with a key derived from the signing key: no offline search.';
comment on column {{schema}}.one_time_tokens.used_at is 'Set by the first successful verification: link and code are single-use.';

create unique index if not exists one_time_tokens_token_hash_idx
  on {{schema}}.one_time_tokens (token_hash);
create index if not exists one_time_tokens_sent_to_idx
  on {{schema}}.one_time_tokens (sent_to);

-- Accounts made from an address alone (a mailed sign-in code) have no username and no password.
-- The Node original's table already allowed both to be null.
alter table {{schema}}.{{table}}
  alter column username drop not null,
  alter column username_lowercase drop not null,
  alter column password drop not null;
comment on column {{schema}}.{{table}}.username is 'Null for accounts made from an email address alone (passwordless sign-up).';
comment on column {{schema}}.{{table}}.password is 'bcrypt hash ($2a$/$2b$); rehashed at login when the configured cost changes. Null: no password (signs in by mailed link or code only); a password login always fails, at the cost of an unknown account.';
