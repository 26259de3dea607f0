-- # What the GoTrue-compatible API needs of sessions and accounts
--
-- A session remembers how it was signed in (GoTrue's `amr`: the method and when), so its access
-- tokens can say so (`amr`, `aal`) and a second factor can later add to it. An account may be
-- banned by an operator until a time: while banned it cannot sign in or refresh, and its sessions
-- are ended when the ban is set, so its tokens die at PostgREST at once.

alter table {{schema}}.sessions
  add column if not exists amr jsonb not null default '[]';
comment on column {{schema}}.sessions.amr is 'How the session was authenticated, GoTrue''s shape: [{"method": "password", "timestamp": 1700000000}]; a second factor appends.';

alter table {{schema}}.{{table}}
  add column if not exists banned_until timestamptz;
comment on column {{schema}}.{{table}}.banned_until is 'Set by the admin API (ban_duration): no sign-in or refresh before this time. Null: not banned.';
