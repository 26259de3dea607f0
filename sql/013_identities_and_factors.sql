-- # External identities (OpenID Connect, GitHub, …) and second factors (TOTP)
--
-- An account may have identities at external providers: the provider's stable subject (`sub`,
-- or GitHub's numeric id) names the account, never the email, which can change hands. A sign-in
-- with a provider runs through two redirects; what the first one promised (state, nonce, our
-- PKCE verifier, where to return) waits in `provider_flow_state` for ten minutes, single use,
-- so the service needs no web session of its own.
--
-- A second factor is a TOTP secret the user's authenticator app shares. Verifying a code adds
-- `totp` to the session's `amr` (sessions, 011), which raises its tokens to `aal2`. Each code
-- is good once (`last_used_step`); recovery codes are kept as hashes and good once each, and
-- using one adds `mfa/recovery_code`, which counts as a second factor too.

create table if not exists {{schema}}.identities (
  id uuid primary key default gen_random_uuid(),
  user_id integer not null references {{schema}}.{{table}} (id) on delete cascade,
  provider text not null,
  subject text not null,
  email text,
  identity_data jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  last_sign_in_at timestamptz,
  unique (provider, subject)
);
comment on table {{schema}}.identities is 'Accounts at external providers linked to a user: one row per (provider, subject). The service reads and writes it; PostgREST roles have no access.';
comment on column {{schema}}.identities.provider is 'The name of the provider in the configuration (providers.<name>).';
comment on column {{schema}}.identities.subject is 'The provider''s stable id of the account (the id_token''s sub; GitHub''s numeric user id).';
comment on column {{schema}}.identities.email is 'The address the provider reported at the last sign-in (lowercased), verified or not: see identity_data.email_verified.';
comment on column {{schema}}.identities.identity_data is 'The profile the provider reported at the last sign-in (sub, email, email_verified, name, picture, …), as GoTrue shows it.';
create index if not exists identities_user_id_idx on {{schema}}.identities (user_id);

create table if not exists {{schema}}.provider_flow_state (
  id bigint generated always as identity primary key,
  state_hash bytea not null unique,
  provider text not null,
  nonce text not null,
  code_verifier text not null,
  redirect_to text not null,
  code_challenge text,
  code_challenge_method text check (code_challenge_method in ('s256', 'plain')),
  link_user_id integer references {{schema}}.{{table}} (id) on delete cascade,
  set_cookie boolean not null default false,
  browser_hash bytea not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null
);
comment on table {{schema}}.provider_flow_state is 'Sign-ins at an external provider between the redirect there and the return to the callback: single use (deleted by the callback), ten minutes at most. The service reads and writes it; PostgREST roles have no access.';
comment on column {{schema}}.provider_flow_state.state_hash is 'SHA-256 of the OAuth state parameter; never the state.';
comment on column {{schema}}.provider_flow_state.nonce is 'The nonce sent to the provider; its id_token must carry it back.';
comment on column {{schema}}.provider_flow_state.code_verifier is 'Our PKCE verifier for the provider''s token endpoint: worthless without the provider''s code, and gone after ten minutes.';
comment on column {{schema}}.provider_flow_state.redirect_to is 'Where the browser returns (allow-listed when the flow began).';
comment on column {{schema}}.provider_flow_state.code_challenge is 'The frontend''s own PKCE challenge: the return then carries an authorization code only its verifier can exchange.';
comment on column {{schema}}.provider_flow_state.set_cookie is 'The flow began at the original API in cookie mode: the callback sets the session cookie instead of putting tokens in the URL.';
comment on column {{schema}}.provider_flow_state.browser_hash is 'SHA-256 of the secret of a cookie set in the browser that began the flow: the callback refuses any other browser, so nobody can hand theirs to someone else (login CSRF, or linking their own identity into another''s account).';
comment on column {{schema}}.provider_flow_state.link_user_id is 'Set when a signed-in user links another provider: the identity joins this account.';
create index if not exists provider_flow_state_expires_at_idx
  on {{schema}}.provider_flow_state (expires_at);

create table if not exists {{schema}}.mfa_factors (
  id uuid primary key default gen_random_uuid(),
  user_id integer not null references {{schema}}.{{table}} (id) on delete cascade,
  friendly_name text,
  factor_type text not null default 'totp' check (factor_type in ('totp', 'recovery_code')),
  status text not null default 'unverified' check (status in ('unverified', 'verified')),
  secret text check ((factor_type = 'totp') = (secret is not null)),
  last_used_step bigint,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (user_id, friendly_name)
);
comment on table {{schema}}.mfa_factors is 'Second factors: TOTP secrets shared with an authenticator app (a factor counts once a first code verified it), and at most one set of recovery codes (factor_type recovery_code, as GoTrue shows it). The service reads and writes it; PostgREST roles have no access.';
comment on column {{schema}}.mfa_factors.secret is 'The base32 TOTP secret (RFC 6238): the service must read it back to check codes, so it cannot be a hash. Reachable by the service''s role only.';
comment on column {{schema}}.mfa_factors.last_used_step is 'The 30-second step of the last code accepted: a code of that step or an older one is refused, so each code works once.';
create index if not exists mfa_factors_user_id_idx on {{schema}}.mfa_factors (user_id);

create table if not exists {{schema}}.mfa_challenges (
  id uuid primary key default gen_random_uuid(),
  factor_id uuid not null references {{schema}}.mfa_factors (id) on delete cascade,
  created_at timestamptz not null default now(),
  verified_at timestamptz,
  address inet
);
comment on table {{schema}}.mfa_challenges is 'A challenge names the factor a code answers (GoTrue''s flow); it lives five minutes and is spent by a right code.';
create index if not exists mfa_challenges_factor_id_idx on {{schema}}.mfa_challenges (factor_id);

create table if not exists {{schema}}.mfa_recovery_codes (
  id bigint generated always as identity primary key,
  factor_id uuid not null references {{schema}}.mfa_factors (id) on delete cascade,
  code_hash bytea not null,
  created_at timestamptz not null default now(),
  used_at timestamptz
);
comment on table {{schema}}.mfa_recovery_codes is 'The codes of a recovery_code factor: each stands in once for a lost authenticator; a new set replaces the old. Stored as keyed HMACs only.';
create index if not exists mfa_recovery_codes_factor_id_idx
  on {{schema}}.mfa_recovery_codes (factor_id);
