-- # Claims helpers, as Supabase has them
--
-- Repeatable. Row-level-security policies written for Supabase (`auth.uid() = owner_id`) port
-- unchanged: both modes set `request.jwt.claims` (bearer tokens through PostgREST, cookies through
-- auth.authenticate). The per-claim settings of PostgREST before 9 are the fallback. They run as
-- the caller, read only settings, and are plain SQL, so the planner inlines them into policies.
-- Only the roles PostgREST switches to may call them (R_pre_request.sql adds the authenticator's
-- other roles); a role owning a view or function that calls them needs the same grants.

create or replace function {{schema}}.jwt() returns jsonb
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claims', true), ''),
    nullif(current_setting('request.jwt.claim', true), ''),
    '{}')::jsonb;
$$;
comment on function {{schema}}.jwt() is 'The claims of the request''s token or session cookie, or {} when anonymous.';
revoke execute on function {{schema}}.jwt() from public;
grant execute on function {{schema}}.jwt() to {{anon_role}}, {{user_role}};

create or replace function {{schema}}.uid() returns uuid
language sql stable as $$
  select case when sub ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
              then sub::uuid end
  from (select coalesce(
    nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub',
    nullif(current_setting('request.jwt.claim.sub', true), '')) as sub) claim;
$$;
comment on function {{schema}}.uid() is 'The signed-in user''s UUID (the sub claim), or null when anonymous or not a UUID.';
revoke execute on function {{schema}}.uid() from public;
grant execute on function {{schema}}.uid() to {{anon_role}}, {{user_role}};

create or replace function {{schema}}.role() returns text
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role',
    nullif(current_setting('request.jwt.claim.role', true), ''));
$$;
comment on function {{schema}}.role() is 'The role claim of the request''s token or session.';
revoke execute on function {{schema}}.role() from public;
grant execute on function {{schema}}.role() to {{anon_role}}, {{user_role}};

create or replace function {{schema}}.email() returns text
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email',
    nullif(current_setting('request.jwt.claim.email', true), ''));
$$;
comment on function {{schema}}.email() is 'The email claim of the request''s token or session, if the user has an address.';
revoke execute on function {{schema}}.email() from public;
grant execute on function {{schema}}.email() to {{anon_role}}, {{user_role}};
