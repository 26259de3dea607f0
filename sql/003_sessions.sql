-- # Sessions
--
-- Every access token names its session (`sid`); a cookie or refresh token is the session's opaque
-- token, stored as its SHA-256 only. Ending a session ends its tokens at PostgREST too.

create table if not exists {{schema}}.sessions (
  id uuid primary key default gen_random_uuid(),
  user_id integer not null references {{schema}}.{{table}} (id) on delete cascade,
  token_hash bytea not null unique,
  created_at timestamptz not null default now(),
  refreshed_at timestamptz not null default now(),
  expires_at timestamptz not null,
  revoked_at timestamptz,
  user_agent text,
  address inet
);
comment on table {{schema}}.sessions is 'One row per signed-in device; ended by logout, password change or expiry.';
comment on column {{schema}}.sessions.token_hash is 'sha256 of the opaque session token (cookie or refresh token).';
comment on column {{schema}}.sessions.expires_at is 'Pushed forward by every refresh.';

create index if not exists sessions_user_id_idx on {{schema}}.sessions (user_id);
create index if not exists sessions_expires_at_idx on {{schema}}.sessions (expires_at);
