-- # PostgREST pre-request functions
--
-- Repeatable: re-applied whenever its rendered text changes (a renamed role or cookie, say).
-- PostgreSQL refuses `set role` inside a security definer function, so the privileged lookups
-- are small definer helpers with a fixed search_path, and the functions PostgREST calls run as
-- their caller.

create or replace function {{schema}}.token_problem(claims jsonb) returns text
language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
declare
  session_id uuid := case when claims->>'sid' ~ '^[0-9a-f-]{36}$' then (claims->>'sid')::uuid end;
  found_user boolean;
  current_count integer;
  session_live boolean;
begin
  if claims->>'typ' is distinct from 'access' and claims ? 'typ' then
    return 'wrong_token_type';
  end if;
  -- One indexed lookup: the user and, when the token names one, its session.
  if claims->>'sub' ~ '^[0-9]{1,9}$' then
    select true, u.token_count, s.revoked_at is null and s.expires_at > now()
      into found_user, current_count, session_live
      from {{schema}}.{{table}} u
      left join {{schema}}.sessions s on s.id = session_id and s.user_id = u.id
      where u.id = (claims->>'sub')::integer;
  elsif claims->>'sub' = 'access' then
    -- Tokens minted by the Node original: the username is in aud, and there is no session.
    select true, u.token_count into found_user, current_count
      from {{schema}}.{{table}} u where u.username_lowercase = lower(claims->>'aud');
  else
    return 'unknown_subject';
  end if;
  if found_user is not true then
    return 'unknown_user';
  end if;
  if current_count is distinct from (claims->>'count')::integer then
    return 'token_revoked';
  end if;
  if claims ? 'sid' and session_live is not true then
    return 'session_ended';
  end if;
  return null;
end
$$;
comment on function {{schema}}.token_problem(jsonb) is 'Why a token of ours may not be used any more (revoked count, ended session, wrong type), or null.';
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
grant execute on function {{schema}}.check_token_count() to public;  -- holds no privilege

drop function if exists {{schema}}.check_bearer_claims();

create or replace function {{schema}}.session_claims(session_token text) returns jsonb
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
  select jsonb_strip_nulls(jsonb_build_object(
      'iss', {{issuer_literal}},
      'exp', floor(extract(epoch from s.expires_at))::bigint,
      'sub', u.id::text,
      'role', case when {{per_user_literal}} then u.username_lowercase::text else {{user_role_literal}} end,
      'username', u.username,
      'email', u.email,
      'count', u.token_count,
      'sid', s.id::text,
      'typ', 'access'))
  from {{schema}}.sessions s
  join {{schema}}.{{table}} u on u.id = s.user_id
  where s.token_hash = sha256(convert_to(session_token, 'UTF8'))
    and s.revoked_at is null
    and s.expires_at > now();
$$;
comment on function {{schema}}.session_claims(text) is 'The claims a token of this live session would carry, or null.';
revoke execute on function {{schema}}.session_claims(text) from public;
grant execute on function {{schema}}.session_claims(text) to {{anon_role}}, {{user_role}};

create or replace function {{schema}}.authenticate() returns void
language plpgsql volatile as $$
declare
  session_token text := nullif(current_setting('request.cookies', true), '')::json->>{{cookie_name_literal}};
  headers json := coalesce(nullif(current_setting('request.headers', true), ''), '{}')::json;
  claims jsonb;
begin
  -- A request with a bearer token is judged by its token, whatever cookie rides along.
  if headers->>'authorization' ilike 'bearer %' or session_token is null then
    perform {{schema}}.check_token_count();
    return;
  end if;
  claims := {{schema}}.session_claims(session_token);
  if claims is null then
    return;  -- an unknown or ended session is anonymous, as in the sessions example
  end if;
  -- CSRF: a cookie rides along on any request the browser sends, so writes must come from a page
  -- of this origin (SameSite keeps other sites' requests away; this also stops sibling hosts).
  if current_setting('request.method', true) not in ('GET', 'HEAD', 'OPTIONS')
     and (headers->>'sec-fetch-site' in ('cross-site', 'same-site')
          or (headers->>'origin' is not null
              and split_part(headers->>'origin', '://', 2) is distinct from headers->>'host')) then
    raise sqlstate 'PGRST' using
      message = '{"code":"cross_origin","message":"Cookie-authenticated writes must come from this origin"}',
      detail = '{"status":403,"headers":{}}';  -- PostgREST 12 needs both keys
  end if;
  execute format('set local role %I', claims->>'role');
  perform set_config('request.jwt.claims', claims::text, true);
end
$$;
comment on function {{schema}}.authenticate() is 'PostgREST pre-request for both modes: a session cookie becomes the role and claims its token would carry; bearer tokens are checked as check_token_count does.';
grant execute on function {{schema}}.authenticate() to public;  -- holds no privilege
