-- # Outbox retention and expiring links
--
-- A mail that carries an expiring secret (a reset token, a one-time link and code) records when
-- that secret dies and what it takes to issue it again. The worker sends such a mail as written
-- while its secret lives; once it has died in the queue (an SMTP outage, `mail retry` days
-- later) the worker issues a new secret and renders the mail again, or does not send it when a
-- newer mail or a change of the account has made it moot. The janitor erases what failed mail
-- says after `email.failed_retention` days and deletes sent mail after `email.sent_retention`.

alter table {{schema}}.outbox
  add column if not exists link_expires_at timestamptz,
  add column if not exists link jsonb;
comment on column {{schema}}.outbox.link_expires_at is 'When the secret in this mail dies (the same now() and lifetime as the secret itself); null: the mail carries none. Past it, the mail is never sent as written.';
comment on column {{schema}}.outbox.link is 'How to issue the mail''s secret again: its kind, the account, what proves it is still the account''s latest, and the template values without any secret. Erased with the body.';
comment on column {{schema}}.outbox.subject is 'Erased ('''') with the bodies: a template may put a code in it.';
comment on column {{schema}}.outbox.recipient is 'Kept after the bodies are erased, so an operator can tell whose mail failed; deleted with the account (its unsent mail) or, once sent, after email.sent_retention days.';

create index if not exists outbox_sent_at_idx on {{schema}}.outbox (sent_at)
  where sent_at is not null;
comment on index {{schema}}.outbox_sent_at_idx is 'The janitor deletes sent mail by age.';

create index if not exists outbox_failed_at_idx on {{schema}}.outbox (failed_at)
  where failed_at is not null;
comment on index {{schema}}.outbox_failed_at_idx is 'The janitor erases failed mail by age; mail status and the metrics count it.';

-- Mail queued before this file has no record of its secret. Unsent mail of a kind that carries
-- one counts as expired an hour (the default lifetime of both kinds of secret) after it was
-- queued; the worker cannot issue such a secret again, so it is then not sent at all.
update {{schema}}.outbox set link_expires_at = created_at + interval '1 hour'
  where sent_at is null and link_expires_at is null and kind in ('reset_password', 'recovery',
    'magic_link', 'confirm_signup', 'confirm_email_change', 'invite');
