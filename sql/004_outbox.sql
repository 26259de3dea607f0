-- # Mail outbox
--
-- A mail is inserted in the same transaction as the change that causes it, and sent by the
-- service's worker: a rolled-back change sends nothing, a committed one is always sent.

create table if not exists {{schema}}.outbox (
  id bigint generated always as identity primary key,
  kind text not null,
  recipient text not null,
  subject text not null,
  body_text text,
  body_html text,
  created_at timestamptz not null default now(),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  sent_at timestamptz,
  failed_at timestamptz,
  last_error text
);
comment on table {{schema}}.outbox is 'Mail waiting to be sent, being retried, sent (bodies erased) or given up on.';
comment on column {{schema}}.outbox.next_attempt_at is 'A worker that claims a mail pushes this forward as a lease; a crash mid-send retries it.';
comment on column {{schema}}.outbox.last_error is 'Why the last attempt failed, without credentials.';

create index if not exists outbox_due_idx on {{schema}}.outbox (next_attempt_at)
  where sent_at is null and failed_at is null;

create or replace function {{schema}}.outbox_notify() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
  perform pg_notify({{outbox_channel_literal}}, '');
  return null;
end
$$;
comment on function {{schema}}.outbox_notify() is 'Wakes the mail workers when the inserting transaction commits.';
revoke execute on function {{schema}}.outbox_notify() from public;

drop trigger if exists outbox_notify on {{schema}}.outbox;
create trigger outbox_notify after insert on {{schema}}.outbox
  for each statement execute function {{schema}}.outbox_notify();
