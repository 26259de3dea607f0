-- # Users
--
-- The table keeps the Node original's columns, so a database it created is adopted in place:
-- every statement here is a no-op on a table that already has them.

create schema if not exists {{schema}};
comment on schema {{schema}} is 'postgrest-auth: users, sessions, mail outbox and the PostgREST pre-request functions.';

create table if not exists {{schema}}.{{table}} (
  id serial primary key,
  username varchar(20) not null,
  username_lowercase varchar(20) not null,
  email text,
  password text not null,
  token_count integer not null default 0
);
comment on table {{schema}}.{{table}} is 'Accounts. The service reads and writes it; PostgREST roles have no access.';
comment on column {{schema}}.{{table}}.username_lowercase is 'Usernames are unique without regard to case.';
comment on column {{schema}}.{{table}}.email is 'Stored lowercased; null when the user gave none.';
comment on column {{schema}}.{{table}}.password is 'bcrypt hash ($2a$/$2b$); rehashed at login when the configured cost changes.';
comment on column {{schema}}.{{table}}.token_count is 'Bumped on password change: every token carrying an older count is refused.';

-- Emails from the original may carry capitals or be empty: the service stores them lowercased or null.
update {{schema}}.{{table}} set email = nullif(lower(email), '') where email <> lower(email) or email = '';

create unique index if not exists {{username_index}}
  on {{schema}}.{{table}} (username_lowercase);
create unique index if not exists {{email_index}}
  on {{schema}}.{{table}} (email);

alter table {{schema}}.{{table}}
  add column if not exists created_at timestamptz not null default now(),
  add column if not exists updated_at timestamptz not null default now(),
  add column if not exists last_sign_in_at timestamptz;
comment on column {{schema}}.{{table}}.last_sign_in_at is 'Last password login or signup.';
