-- # PKCE for the mailed flows (GoTrue's flow state)
--
-- A client that sends a `code_challenge` with its sign-up, sign-in code or recovery request binds
-- the mailed link to itself: opening the link does not put a session in the browser's URL but a
-- short-lived, single-use authorization code (`?code=`), which only the holder of the challenge's
-- verifier can trade for a session (`POST /token?grant_type=pkce`). A link opened in another
-- browser, or a code caught from a log or a referrer, is worth nothing.

alter table {{schema}}.one_time_tokens
  add column if not exists code_challenge text,
  add column if not exists code_challenge_method text
    check (code_challenge_method in ('s256', 'plain'));
comment on column {{schema}}.one_time_tokens.code_challenge is 'PKCE: the challenge of the client that asked for this mail; opening the link then yields an authorization code, not a session.';
comment on column {{schema}}.one_time_tokens.code_challenge_method is 'PKCE: s256 (the challenge is the verifier''s SHA-256, base64url) or plain.';

create table if not exists {{schema}}.flow_state (
  id bigint generated always as identity primary key,
  auth_code_hash bytea not null unique,
  user_id integer not null references {{schema}}.{{table}} (id) on delete cascade,
  code_challenge text not null,
  code_challenge_method text not null check (code_challenge_method in ('s256', 'plain')),
  authentication_method text not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null
);
comment on table {{schema}}.flow_state is 'PKCE authorization codes waiting to be exchanged for a session: single use (deleted by the exchange), short-lived. The service reads and writes it; PostgREST roles have no access.';
comment on column {{schema}}.flow_state.auth_code_hash is 'sha256 of the authorization code; never the code.';
comment on column {{schema}}.flow_state.authentication_method is 'How the mailbox was proven (magiclink, recovery, signup, …): the session''s amr method.';
comment on column {{schema}}.flow_state.expires_at is 'After this the code is refused; the janitor deletes the row.';

create index if not exists flow_state_expires_at_idx on {{schema}}.flow_state (expires_at);
