-- # Audit log
--
-- Security events (sign-up, sign-in and its failures, refresh-token reuse, password and address
-- changes, recovery, sign-out, ended sessions, deleted accounts), for the account's owner and its
-- operators. Never a password, token or code: `detail` holds small facts such as the scope of a
-- sign-out. Rows outlive their user (no foreign key): a deleted account keeps its events, by id.
-- The janitor removes rows older than `audit.retention_days`.

create table if not exists {{schema}}.audit_log (
  id bigint generated always as identity primary key,
  created_at timestamptz not null default now(),
  event text not null,
  user_id integer,
  address inet,
  user_agent text,
  detail jsonb not null default '{}'
);
comment on table {{schema}}.audit_log is 'Security events of accounts; no secret in any column. Pruned after audit.retention_days.';
comment on column {{schema}}.audit_log.user_id is 'The account''s id; kept after the account is deleted.';
comment on column {{schema}}.audit_log.detail is 'Small facts about the event (scope, reason, kind of mail), never a secret.';

create index if not exists audit_log_user_id_idx on {{schema}}.audit_log (user_id, created_at);
create index if not exists audit_log_created_at_idx on {{schema}}.audit_log (created_at);
