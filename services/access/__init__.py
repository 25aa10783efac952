"""Who may do what: shared domain code of the gateway's authorizer and every service's own check.

The same rules run twice (Envoy asks the admin service's authorizer; each service checks again on its
own port), so they live here once: the scopes and which RPC needs which (`scopes`), who a caller is
(`principal`), and the audit trail of admin actions (`audit`). No grpc in here.
"""
