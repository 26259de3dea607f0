"""Second factors: TOTP authenticators and recovery codes. No HTTP here: the API adapters call
`factors` and `recovery_codes`; a verified code raises the caller's session to aal2."""
