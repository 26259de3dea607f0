"""Sign-in with external providers (OpenID Connect, GitHub, Google, GitLab): the provider
clients, the redirect flow and the accounts their identities name. No HTTP routes here: the
API adapters call `flow.begin` and `flow.finish`."""
