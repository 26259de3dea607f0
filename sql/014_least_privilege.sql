-- # Least privilege
--
-- 002 gave `usage` on this schema to PUBLIC so that any role a token names could run the
-- pre-request. Only the roles PostgREST switches to need it: the anonymous and the user role here
-- (a per-user role has it through the user role it is a member of), and any other role granted
-- to the authenticator (a service role, say) in R_pre_request.sql. Every other role of the
-- cluster can no longer look into this schema. The functions' own grants sit beside them in the
-- R_ files.

revoke usage on schema {{schema}} from public;
grant usage on schema {{schema}} to {{anon_role}}, {{user_role}};
