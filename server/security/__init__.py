"""Security of the node: TLS material, who a caller is (authentication), what it may do
(authorization), and the audit trail of both.

Owns `authorizer` (the caller of the current request, the node's `Authorizer` binding the node's
security settings and current metadata image to `freshet.metadata.security.authorize`, denial
audit lines and metrics) and the TLS, SASL and session modules beside it.

May import: the server's top level (errors, metrics, config), freshet.metadata, wire types, grpc.
Never broker, groups, controller, kafka, http, replication or cluster: every front-end imports
this package, so it sits below all of them.
"""
