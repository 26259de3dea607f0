-- # Where an account came from, in app_metadata
--
-- GoTrue's convention, which Supabase clients and policies read: a password (or mailed-code)
-- account has `app_metadata = {"provider": "email", "providers": ["email"]}`. A column default
-- gives it to every new row, whichever sign-up path inserts it (username and password, email
-- alone, the GoTrue API), so no path can forget it. Sign-in with another provider (OIDC, later)
-- sets its own. Existing accounts, the Node original's included, are password accounts: those
-- whose app_metadata is still empty get the same.

alter table {{schema}}.{{table}}
  alter column app_metadata set default '{"provider": "email", "providers": ["email"]}';
comment on column {{schema}}.{{table}}.app_metadata is 'A JSON object only the admin API and the command line change (at most 16 KiB); in the access token''s claims. New accounts get {"provider": "email", "providers": ["email"]}, as GoTrue gives password accounts.';

update {{schema}}.{{table}}
  set app_metadata = '{"provider": "email", "providers": ["email"]}'
  where app_metadata = '{}';
