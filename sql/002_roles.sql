-- # Roles
--
-- PostgREST logs in as the authenticator and switches to the anonymous role or to the role named
-- in the token. The authenticator is created NOINHERIT NOLOGIN when missing: the operator gives it
-- LOGIN and a password. Roles that exist already are left as they are.

do $$
begin
  if not exists (select from pg_catalog.pg_roles where rolname = {{anon_role_literal}}) then
    create role {{anon_role}} nologin;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = {{user_role_literal}}) then
    create role {{user_role}} nologin;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = {{authenticator_literal}}) then
    create role {{authenticator}} noinherit nologin;
  end if;
end
$$;
comment on role {{anon_role}} is 'postgrest-auth: requests without a token.';
comment on role {{user_role}} is 'postgrest-auth: requests with a valid access token or session cookie.';

grant {{anon_role}} to {{authenticator}};
grant {{user_role}} to {{authenticator}};

-- The pre-request runs as whatever role a token names, tokens of other issuers included
-- (a service role, say), so every role may reach the functions in this schema. The tables in it
-- have no grants at all and stay out of reach.
grant usage on schema {{schema}} to public;
