-- # A role per user (compat mode, `roles.per_user: true`)
--
-- Repeatable. The Node original made a role per user but never granted it to the authenticator,
-- so PostgREST answered `permission denied to set role`. Adopting its database grants them here
-- (and creates any that are missing); new users get theirs at signup. A role that is more than
-- the original made (a superuser or login role, a member of anything but the anonymous and user
-- roles, the owner or grantee of anything, one of the three configured roles) is never touched:
-- a user named after it must not borrow its powers.

do $$
declare
  name text;
  role_id oid;
begin
  if not {{per_user_literal}} then
    return;
  end if;
  -- accounts without a username (made from an address alone) have no role of their own
  for name in select u.username_lowercase from {{schema}}.{{table}} u
               where u.username_lowercase is not null loop
    if name in ({{anon_role_literal}}, {{user_role_literal}}, {{authenticator_literal}}) then
      continue;
    end if;
    select r.oid into role_id from pg_catalog.pg_roles r where r.rolname = name;
    if role_id is null then
      execute format('create role %I nologin', name);
    elsif exists (select from pg_catalog.pg_roles r where r.oid = role_id
                  and (r.rolsuper or r.rolcanlogin or r.rolcreaterole or r.rolcreatedb
                       or r.rolreplication or r.rolbypassrls))
       or exists (select from pg_catalog.pg_auth_members m
                  join pg_catalog.pg_roles g on g.oid = m.roleid
                  where m.member = role_id
                    and g.rolname not in ({{anon_role_literal}}, {{user_role_literal}}))
       or exists (select from pg_catalog.pg_shdepend d
                  where d.refclassid = 'pg_catalog.pg_authid'::regclass and d.refobjid = role_id)
    then
      raise warning 'postgrest-auth: role % is not a plain user role; not granted', name;
      continue;
    end if;
    execute format('grant %I, %I to %I', {{user_role_literal}}, {{anon_role_literal}}, name);
    execute format('grant %I to %I', name, {{authenticator_literal}});
  end loop;
end
$$;
