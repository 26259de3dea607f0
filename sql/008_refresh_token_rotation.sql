-- # Rotating refresh tokens
--
-- Every refresh with a session's opaque token (refresh token or cookie) gives the session a new
-- one and retires the old, whose SHA-256 is kept here for the session's life. A retired token
-- presented again within `sessions.reuse_interval` (two tabs refreshing at once) is answered with
-- the current one; presented later, it means two holders of one session, and the whole session
-- ends. Rows go with their session (the janitor deletes sessions a day after they end).

create table if not exists {{schema}}.refresh_tokens_retired (
  token_hash bytea primary key,
  session_id uuid not null references {{schema}}.sessions (id) on delete cascade,
  retired_at timestamptz not null default now()
);
comment on table {{schema}}.refresh_tokens_retired is 'Refresh tokens (and cookies) that a rotation replaced, as sha256: presented again after sessions.reuse_interval, they end their session.';
comment on column {{schema}}.refresh_tokens_retired.token_hash is 'sha256 of the retired opaque token; never the token.';
comment on column {{schema}}.refresh_tokens_retired.session_id is 'The session the token belonged to.';
comment on column {{schema}}.refresh_tokens_retired.retired_at is 'When a refresh replaced it; reuse_interval counts from here.';

create index if not exists refresh_tokens_retired_session_id_idx
  on {{schema}}.refresh_tokens_retired (session_id);

-- A rotation commits without waiting for the WAL flush (it is a third of a refresh's cost). If
-- the database crashes before the flush, the session still holds the previous token while its
-- client holds the successor; the successor's hash, stored one rotation ahead, lets that client
-- carry on instead of being signed out.
alter table {{schema}}.sessions add column if not exists next_token_hash bytea;
comment on column {{schema}}.sessions.next_token_hash is 'sha256 of the token the current one rotates to: accepted as current when a crash lost the rotation that issued it.';
create unique index if not exists sessions_next_token_hash_idx
  on {{schema}}.sessions (next_token_hash);
