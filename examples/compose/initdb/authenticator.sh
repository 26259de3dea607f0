#!/bin/sh
# Run by the postgres image once, when it creates an empty data directory: the role PostgREST logs
# in as, with the password from AUTHENTICATOR_PASSWORD (examples/.env). `postgrest-auth migrate`
# then finds it and grants it web_anon and normal_user; it never changes an existing role's login.
set -eu
psql --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     --set password="$AUTHENTICATOR_PASSWORD" <<'SQL'
create role authenticator noinherit login password :'password';
comment on role authenticator is 'PostgREST logs in as this role (through PgBouncer) and switches to the role a request''s token names.';
SQL
