"""What operators see of a running service: Prometheus metrics, JSON logs, request ids.

Nothing here knows the account rules; the operations report events through `metrics` and
`context`, and the HTTP layer wires the middleware and `GET /metrics` in.
"""
