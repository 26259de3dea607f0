-- # PostgREST pre-request functions
--
-- Repeatable: re-applied whenever its rendered text changes (a renamed role or cookie, say).
-- PostgreSQL refuses `set role` inside a security definer function, so the privileged lookups
-- are small definer helpers with a fixed search_path, and the functions PostgREST calls run as
-- their caller. Functions default to PUBLIC execute: each one here is revoked from PUBLIC and
-- granted to the roles PostgREST switches to, or to no one (the service owns them all).

create or replace function {{schema}}.session_aal(amr jsonb) returns text
language sql immutable as $$
  -- a second factor (a TOTP code, or a recovery code standing in for it) among the session's
  -- methods makes it aal2
  select case when coalesce(amr, '[]') @> '[{"method": "totp"}]'
                or coalesce(amr, '[]') @> '[{"method": "mfa/recovery_code"}]'
              then 'aal2' else 'aal1' end;
$$;
comment on function {{schema}}.session_aal(jsonb) is 'GoTrue''s authenticator assurance level of a session''s methods (amr): the one rule the claims, the service''s checks and the sessions it ends on a first factor share. Reads nothing, so it holds no privilege.';
revoke execute on function {{schema}}.session_aal(jsonb) from public;  -- the service and session_claims only

drop function if exists {{schema}}.access_claims({{schema}}.{{table}}, uuid);
-- Stable, not immutable: jsonb_build_object is stable, and PostgreSQL inlines an SQL function
-- into the query calling it only when the body is no more volatile than declared. Inlined, the
-- claims are planned once with the lookup that reads the row (a cached plan in session_claims),
-- instead of planning the function body anew on every call.
create or replace function {{schema}}.access_claims(u {{schema}}.{{table}}, session_id uuid, amr jsonb)
returns jsonb language sql stable as $$
  select jsonb_build_object(
      'iss', {{issuer_literal}},
      'sub', u.uid::text,
      'aud', {{aud_literal}},
      -- compat mode: the user's own role; an account without a username (made from an
      -- address alone before roles.per_user was turned on) has none, so it gets the user role
      'role', case when {{per_user_literal}} then coalesce(u.username_lowercase::text, {{user_role_literal}}) else {{user_role_literal}} end,
      'count', u.token_count,
      'typ', 'access',
      'app_metadata', u.app_metadata,
      'user_metadata', u.user_metadata,
      'is_anonymous', false,
      'aal', {{schema}}.session_aal(amr),
      'amr', coalesce(amr, '[]'),
      'username', u.username,
      'email', u.email,
      'sid', session_id::text,
      'session_id', session_id::text)
    -- the keys of what the user or token lacks are left out, not null: one pass over the
    -- object, where a concatenation per optional key rebuilt it each time
    - array_remove(array[
        case when u.username is null then 'username' end,
        case when u.email is null then 'email' end,
        case when session_id is null then 'sid' end,
        case when session_id is null then 'session_id' end], null);
$$;
comment on function {{schema}}.access_claims({{schema}}.{{table}}, uuid, jsonb) is 'The claims of an access token of this user and session (GoTrue''s names: aud, session_id, aal, amr, is_anonymous besides the original''s), but its times and id: the one definition the service signs and auth.authenticate sets. Reads nothing, so it holds no privilege.';
revoke execute on function {{schema}}.access_claims({{schema}}.{{table}}, uuid, jsonb) from public;  -- the service and session_claims only

create or replace function {{schema}}.token_problem(claims jsonb) returns text
language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
declare
  subject text := claims->>'sub';
  session_key text := claims->>'sid';
  session_live boolean;
  current_count integer;
begin
  if claims ? 'typ' and claims->>'typ' is distinct from 'access' then
    return 'wrong_token_type';
  end if;
  if claims ? 'sid' then
    -- A token that names a session is judged by its session alone: one indexed lookup.
    -- The shape of a UUID before the cast: its 36 characters, tested with ltrim rather than a
    -- regular expression (whose matcher cost a sixth of the whole check).
    if length(session_key) <> 36 or ltrim(session_key, '0123456789abcdefABCDEF-') <> '' then
      return 'session_ended';
    end if;
    select s.revoked_at is null and s.expires_at > now() into session_live
      from {{schema}}.sessions s join {{schema}}.{{table}} u on u.id = s.user_id
      where s.id = session_key::uuid and subject in (u.uid::text, u.id::text);
    return case when session_live then null else 'session_ended' end;
  end if;
  -- No session: the user's count judges (tokens of the Node original).
  if subject = 'access' then
    select u.token_count into current_count
      from {{schema}}.{{table}} u
      where u.username_lowercase = lower(claims->>'aud') and u.adopted_at is not null;
  elsif length(subject) = 36 and ltrim(subject, '0123456789abcdefABCDEF-') = '' then
    select u.token_count into current_count
      from {{schema}}.{{table}} u where u.uid = subject::uuid;
  else
    return 'unknown_subject';
  end if;
  if not found then
    return 'unknown_user';
  end if;
  if claims->>'count' is distinct from current_count::text then
    return 'token_revoked';
  end if;
  return null;
end
$$;
comment on function {{schema}}.token_problem(jsonb) is 'Why a token of ours may not be used any more (ended session, revoked count, wrong type), or null.';
revoke execute on function {{schema}}.token_problem(jsonb) from public;
grant execute on function {{schema}}.token_problem(jsonb) to {{anon_role}}, {{user_role}};

create or replace function {{schema}}.refuse_token(problem text) returns void
language plpgsql immutable set search_path = pg_catalog, pg_temp as $$
begin
  raise sqlstate 'PGRST' using
    message = json_build_object('code', problem, 'message', 'The access token is no longer valid')::text,
    detail = json_build_object('status', 401, 'headers', json_build_object(
      'WWW-Authenticate', format('Bearer error="invalid_token", error_description="%s"', problem)))::text;
end
$$;
comment on function {{schema}}.refuse_token(text) is 'Makes PostgREST answer 401 with WWW-Authenticate.';
revoke execute on function {{schema}}.refuse_token(text) from public;
grant execute on function {{schema}}.refuse_token(text) to {{anon_role}}, {{user_role}};

-- The functions PostgREST calls on every request carry no `set search_path`: every name in them
-- is qualified (pg_catalog is searched first anyway), and the per-call setting swap would cost
-- as much as the lookup itself. They run as the caller and hold no privilege.
create or replace function {{schema}}.check_token_count() returns void
language plpgsql stable as $$
declare
  claims jsonb := nullif(current_setting('request.jwt.claims', true), '')::jsonb;
  problem text;
begin
  if claims is null then
    -- PostgREST before 9 set one setting per claim.
    claims := jsonb_strip_nulls(jsonb_build_object(
      'sub', nullif(current_setting('request.jwt.claim.sub', true), ''),
      'aud', nullif(current_setting('request.jwt.claim.aud', true), ''),
      'count', nullif(current_setting('request.jwt.claim.count', true), ''),
      'typ', nullif(current_setting('request.jwt.claim.typ', true), ''),
      'sid', nullif(current_setting('request.jwt.claim.sid', true), '')));
  end if;
  -- Anonymous requests, and tokens not minted by this service (no count, typ or sid), pass.
  if not (claims ?| array['count', 'typ', 'sid']) then
    return;
  end if;
  problem := {{schema}}.token_problem(claims);
  if problem is not null then
    perform {{schema}}.refuse_token(problem);
  end if;
end
$$;
comment on function {{schema}}.check_token_count() is 'PostgREST pre-request for bearer tokens (the name the Node original documented): refuses a token whose count is stale, whose type is not access or whose session ended.';
revoke execute on function {{schema}}.check_token_count() from public;
grant execute on function {{schema}}.check_token_count() to {{anon_role}}, {{user_role}};

drop function if exists {{schema}}.check_bearer_claims();

-- plpgsql, not sql: a security definer SQL function is never inlined, so its body would be
-- parsed and planned on every call (most of a cookie request's cost); plpgsql keeps the plans of
-- its two lookups for the connection's life.
create or replace function {{schema}}.session_claims(session_token text) returns jsonb
language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
declare
  hashed bytea := sha256(convert_to(session_token, 'UTF8'));
  claims jsonb;
begin
  select {{schema}}.access_claims(u, s.id, s.amr)
         || jsonb_build_object('exp', floor(extract(epoch from s.expires_at))::bigint)
    into claims
    from {{schema}}.sessions s
    join {{schema}}.{{table}} u on u.id = s.user_id
   where s.token_hash = hashed and s.revoked_at is null and s.expires_at > now();
  if found then
    return claims;
  end if;
  -- Not a current cookie: one a refresh replaced under reuse_interval ago (a request of another
  -- tab, in flight during the rotation) still opens its session.
  select {{schema}}.access_claims(u, s.id, s.amr)
         || jsonb_build_object('exp', floor(extract(epoch from s.expires_at))::bigint)
    into claims
    from {{schema}}.refresh_tokens_retired r
    join {{schema}}.sessions s on s.id = r.session_id
    join {{schema}}.{{table}} u on u.id = s.user_id
   where r.token_hash = hashed
     and r.retired_at > now() - make_interval(secs => {{reuse_interval_seconds}})
     and s.revoked_at is null and s.expires_at > now();
  return claims;
end
$$;
comment on function {{schema}}.session_claims(text) is 'The claims a token of this live session would carry, or null. Takes the current cookie, or one rotated out less than sessions.reuse_interval ago.';
revoke execute on function {{schema}}.session_claims(text) from public;
grant execute on function {{schema}}.session_claims(text) to {{anon_role}}, {{user_role}};

create or replace function {{schema}}.authenticate() returns void
language plpgsql volatile as $$
declare
  session_token text := nullif(current_setting('request.cookies', true), '')::json->>{{cookie_name_literal}};
  header_text text := coalesce(nullif(current_setting('request.headers', true), ''), '{}');
  headers json;
  claims jsonb;
begin
  -- A request with a bearer token is judged by its token, whatever cookie rides along. The
  -- headers are parsed only if the name is in their text (PostgREST writes header names in lower
  -- case and letters unescaped), so a plain cookie request does not pay for it.
  if session_token is null
     or (strpos(header_text, 'authorization') > 0
         and header_text::json->>'authorization' ilike 'bearer %') then
    perform {{schema}}.check_token_count();
    return;
  end if;
  claims := {{schema}}.session_claims(session_token);
  if claims is null then
    return;  -- an unknown or ended session is anonymous, as in the sessions example
  end if;
  -- CSRF: a cookie rides along on any request the browser sends, so writes must come from a page
  -- of this origin (SameSite keeps other sites' requests away; this also stops sibling hosts).
  if current_setting('request.method', true) not in ('GET', 'HEAD', 'OPTIONS') then
    headers := header_text::json;
    if headers->>'sec-fetch-site' in ('cross-site', 'same-site')
       or (headers->>'origin' is not null
           and split_part(headers->>'origin', '://', 2) is distinct from headers->>'host') then
      raise sqlstate 'PGRST' using
        message = '{"code":"cross_origin","message":"Cookie-authenticated writes must come from this origin"}',
        detail = '{"status":403,"headers":{}}';  -- PostgREST 12 needs both keys
    end if;
  end if;
  -- set_config, as PostgREST sets the role itself: `set local role` without an execute
  perform set_config('role', claims->>'role', true);
  perform set_config('request.jwt.claims', claims::text, true);
end
$$;
comment on function {{schema}}.authenticate() is 'PostgREST pre-request for both modes: a session cookie becomes the role and claims its token would carry; bearer tokens are checked as check_token_count does.';
revoke execute on function {{schema}}.authenticate() from public;
grant execute on function {{schema}}.authenticate() to {{anon_role}}, {{user_role}};

-- The pre-request runs as whatever role PostgREST switched to: besides the two roles above (and
-- the per-user roles, members of the user role), any role granted to the authenticator (a
-- service role, say) needs what the anonymous role has here. `postgrest-auth migrate` calls this
-- on every run, so it also reaches a role granted to the authenticator later.
create or replace function {{schema}}.grant_to_postgrest_roles() returns void
language plpgsql volatile set search_path = pg_catalog, pg_temp as $$
declare
  grantee name;
  fn regprocedure;
begin
  for grantee in
    select r.rolname from pg_catalog.pg_auth_members m
      join pg_catalog.pg_roles r on r.oid = m.roleid
      join pg_catalog.pg_roles a on a.oid = m.member
     where a.rolname = {{authenticator_literal}}
     order by r.rolname
  loop
    if not pg_catalog.has_schema_privilege(grantee, {{schema_literal}}, 'usage') then
      execute format('grant usage on schema %I to %I', {{schema_literal}}, grantee);
    end if;
    for fn in
      select p.oid::regprocedure from pg_catalog.pg_proc p
        join pg_catalog.pg_namespace n on n.oid = p.pronamespace
       where n.nspname = {{schema_literal}}
         and pg_catalog.has_function_privilege({{anon_role_literal}}, p.oid, 'execute')
         and not pg_catalog.has_function_privilege(grantee, p.oid, 'execute')
    loop
      execute format('grant execute on function %s to %I', fn, grantee);
    end loop;
  end loop;
end
$$;
comment on function {{schema}}.grant_to_postgrest_roles() is 'Gives every role granted to the authenticator what the anonymous role holds in this schema (usage, the pre-request functions, the claims helpers). Run by postgrest-auth migrate; run it after granting the authenticator a new role.';
revoke execute on function {{schema}}.grant_to_postgrest_roles() from public;
select {{schema}}.grant_to_postgrest_roles();
