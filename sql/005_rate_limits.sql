-- # Rate limits
--
-- Fixed-window counters shared by every instance. Unlogged: losing them in a crash only forgives
-- a few attempts, and they cost no WAL.

create unlogged table if not exists {{schema}}.rate_limits (
  key text primary key,
  window_started_at timestamptz not null,
  hits integer not null
);
comment on table {{schema}}.rate_limits is 'Attempts per address or account in the current window; old windows are swept.';
