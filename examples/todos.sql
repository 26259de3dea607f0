-- # A to-do application behind PostgREST and postgrest-auth
--
-- A literate example, in the style of the postgrest-sessions-example: read it top to bottom, or run
-- it as it is:
--
--     psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f examples/todos.sql
--
-- It relies on what `postgrest-auth migrate` creates: the schema `auth` with the table `auth.users`,
-- and the roles `web_anon` (requests without a token), `normal_user` (signed-in requests) and
-- `authenticator` (the role PostgREST logs in as). Run it as the owner of `auth.users` (or a
-- superuser): the foreign key and the `api.users` view need to read that table.
--
-- Whether a request carries a bearer token or a session cookie, PostgREST (or the `auth.authenticate`
-- pre-request) leaves the same claims in `request.jwt.claims`: `sub` is the user's UUID, `role`,
-- `username`, `email` and the metadata as in the token. Everything below is keyed on those claims
-- through `auth.uid()` (installed by `postgrest-auth migrate`, as Supabase has it), so it works
-- unchanged in both modes, and policies written for Supabase port as they are.
--
-- Two schemas keep storage and interface apart:
--
-- * `app` holds the tables. PostgREST does not expose it.
-- * `api` is what PostgREST serves (`db-schemas = "api"`): views and functions only, so the tables can
--   change without breaking clients.
--
-- The script is safe to run again: it works in one transaction, creates what is missing and replaces
-- what it owns.

begin;

-- ## Who is asking
--
-- `auth.uid()` reads the current user's UUID from the claims. It answers null for anonymous
-- requests, and for tokens whose `sub` is not a UUID (tokens minted by the Node original carry
-- `sub: "access"`), instead of failing the whole request on a bad cast.

create schema if not exists app;
comment on schema app is 'To-do example: tables. Not exposed by PostgREST; reached through the api views.';
grant usage on schema app to web_anon, normal_user;

-- ## To-dos
--
-- Every to-do belongs to the user who wrote it: `user_id` defaults to the id in the claims, so
-- clients never send it. A to-do can be made public, and then everyone may read it, signed in or not.
-- Deleting a user deletes their to-dos.

create table if not exists app.todos (
  id bigint generated always as identity primary key,
  user_id uuid not null default auth.uid()
    references auth.users (uid) on delete cascade,
  description text not null
    constraint todos_description_length check (length(description) between 1 and 500),
  done boolean not null default false,
  public boolean not null default false,
  created_at timestamptz not null default now()
);
comment on table app.todos is 'To-do items. Row-level security: owners see and change their own rows, everyone reads public ones.';
comment on column app.todos.user_id is 'Owner; filled in from the claims (sub) on insert.';
comment on column app.todos.description is 'What to do, 1 to 500 characters.';
comment on column app.todos.done is 'Ticked off.';
comment on column app.todos.public is 'Readable by everyone, anonymous visitors included.';
comment on column app.todos.created_at is 'When the to-do was written.';

create index if not exists todos_user_id_idx on app.todos (user_id);

-- The `api.todos` view below runs with the rights of whoever calls it (`security_invoker`), so the
-- PostgREST roles need privileges on the table itself; row-level security then decides which rows.
-- Writes are limited to the columns a person may choose: never `id`, `user_id` or `created_at`.
-- The identity column needs no grant on its sequence: PostgreSQL draws identity values without a
-- privilege check (a `serial` column, by contrast, would need `usage` on its sequence).
grant select on app.todos to web_anon, normal_user;
grant insert (description, done, public), update (description, done, public), delete
  on app.todos to normal_user;

-- Row-level security. The table owner (who runs this script) is not subject to it, so maintenance
-- and the `on delete cascade` from `auth.users` keep working; the PostgREST roles always are.
alter table app.todos enable row level security;

-- Owners do everything with their own rows. `with check` also stops anyone from writing a row that
-- would belong to somebody else.
drop policy if exists todos_owner on app.todos;
create policy todos_owner on app.todos
  for all
  to normal_user
  using (user_id = auth.uid())
  with check (user_id = auth.uid());
comment on policy todos_owner on app.todos is 'Owners select, insert, update and delete their own to-dos.';

-- Anyone reads public rows. This policy is for `select` only: someone else's public to-do can be seen,
-- not changed or deleted (update and delete only consider the owner policy).
drop policy if exists todos_public_read on app.todos;
create policy todos_public_read on app.todos
  for select
  to web_anon, normal_user
  using (public);
comment on policy todos_public_read on app.todos is 'Everyone, anonymous visitors included, reads public to-dos.';

-- ## Notes that need a second factor
--
-- Some rows deserve more than a password. A session that verified a second factor (a TOTP code
-- from an authenticator app, or a recovery code) carries `aal: "aal2"` in its claims, whether the
-- request has a bearer token or the session cookie; a password alone gives `aal1`. The policy
-- below serves these notes to `aal2` sessions only: a stolen password opens the to-dos, not these.

create table if not exists app.private_notes (
  id bigint generated always as identity primary key,
  user_id uuid not null default auth.uid()
    references auth.users (uid) on delete cascade,
  body text not null constraint private_notes_body_length check (length(body) between 1 and 2000),
  created_at timestamptz not null default now()
);
comment on table app.private_notes is 'Notes only their owner reads, and only from a session that verified a second factor (aal2).';
comment on column app.private_notes.user_id is 'Owner; filled in from the claims (sub) on insert.';
comment on column app.private_notes.body is 'The note, 1 to 2000 characters.';
comment on column app.private_notes.created_at is 'When the note was written.';

create index if not exists private_notes_user_id_idx on app.private_notes (user_id);
grant select, insert (body), delete on app.private_notes to normal_user;
alter table app.private_notes enable row level security;

drop policy if exists private_notes_owner_aal2 on app.private_notes;
create policy private_notes_owner_aal2 on app.private_notes
  for all
  to normal_user
  using (user_id = auth.uid() and auth.jwt()->>'aal' = 'aal2')
  with check (user_id = auth.uid() and auth.jwt()->>'aal' = 'aal2');
comment on policy private_notes_owner_aal2 on app.private_notes is 'Owners read and write their notes from aal2 sessions only (a second factor verified).';

-- ## The API
--
-- PostgREST serves this schema only.

create schema if not exists api;
comment on schema api is 'To-do example: what PostgREST exposes (db-schemas = "api").';
grant usage on schema api to web_anon, normal_user;

-- ### api.todos
--
-- A plain projection of the table, so PostgreSQL makes it insertable, updatable and deletable by
-- itself. `security_invoker` (PostgreSQL 15 and later) makes the table's row-level security apply to
-- the caller; without it a view runs as its owner, who bypasses the policies, and everyone would see
-- every row.
--
--     GET    /todos?order=id                      own to-dos and everyone's public ones
--     POST   /todos          {"description": …}   (Prefer: return=representation to get the row)
--     PATCH  /todos?id=eq.1  {"public": true}
--     DELETE /todos?id=eq.1

create or replace view api.todos with (security_invoker = true) as
  select id, user_id, description, done, public, created_at
  from app.todos;
comment on view api.todos is 'Your to-dos and everyone''s public ones. Signed-in users add, change and delete their own.';
comment on column api.todos.user_id is 'Owner; set from your token, not writable.';
comment on column api.todos.public is 'Set to true to let everyone read this to-do.';

revoke all on api.todos from public;
grant select on api.todos to web_anon, normal_user;
grant insert (description, done, public), update (description, done, public), delete
  on api.todos to normal_user;

-- ### api.private_notes
--
-- Through PostgREST an `aal1` session sees no rows (and may write none); after `mfa.verify` the
-- same user sees them.

create or replace view api.private_notes with (security_invoker = true) as
  select id, body, created_at from app.private_notes;
comment on view api.private_notes is 'Your notes that need a second factor: rows only for aal2 sessions.';
revoke all on api.private_notes from public;
grant select, insert (body), delete on api.private_notes to normal_user;

-- ### api.users
--
-- Signed-in users may see who else is here (to put a name on a public to-do), but `auth.users` also
-- holds password hashes, emails and token counts, and the PostgREST roles have no privilege on it at
-- all. This view therefore deliberately runs with its owner's rights (`security_invoker = false`, the
-- default, spelled out here): it reads `auth.users` as the owner and hands out exactly three columns,
-- without granting anything on the table itself. The view is simple enough to be auto-updatable, so
-- it must never be granted anything but `select`: a write through it would run as the owner.

create or replace view api.users with (security_invoker = false) as
  select uid as id, username,
    -- accounts of the GoTrue API have no username: the name they chose at sign-up, if any
    coalesce(username::text, user_metadata->>'username') as display_name
  from auth.users;
comment on view api.users is 'UUIDs, usernames and display names of all users, for signed-in users only. Runs as its owner on purpose: auth.users stays closed.';

revoke all on api.users from public;
grant select on api.users to normal_user;

-- ### api.me()
--
-- `GET /rpc/me` (or `POST /rpc/me`) answers who the request is from, straight from the claims: no
-- table is read. Anonymous requests get nulls.

drop function if exists api.me(out integer, out text);
create or replace function api.me(out id uuid, out username text)
language sql stable security invoker
set search_path = pg_catalog, pg_temp
as $$
  select auth.uid(), auth.jwt()->>'username';
$$;
comment on function api.me() is 'The current user''s id and username, from the token or session claims.';
revoke execute on function api.me() from public;
grant execute on function api.me() to web_anon, normal_user;

commit;

-- Tell a running PostgREST to reload its schema cache.
notify pgrst, 'reload schema';
