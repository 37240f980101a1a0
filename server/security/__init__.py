"""Security of the node: TLS material and its rotation, who a caller is (authentication), what it
may do (authorization), and the audit trail of both.

Owns `tls` (the node's certificate, key and CA from disk, reloaded when the files change; gRPC
credentials and ssl contexts for every listener and inter-node connection; principals from peer
certificates), `node_identity` (inter-node gRPC channels, and the signed certificate proof that
names a calling node `User:<CN>` where grpcio cannot request a client certificate),
`certificates` (a CA and the certificates it signs, for `cluster up --secure` and tests) and
`authorizer` (the caller of the current request, the node's `Authorizer` binding the node's
security settings and current metadata image to `freshet.metadata.security.authorize`, denial
audit lines and metrics).

May import: the standard library, grpc, cryptography, prometheus_client, the server's top level
(errors, config), freshet.metadata (pure models), wire types. Never the roles' packages (broker,
groups, controller, replication, cluster, http, kafka, tools) nor node: every listener and
channel of the node imports this package, so it sits below all of them.

Thread-safety: each module says; `tls.TlsMaterial` is shared by the event loop, gRPC's threads,
the HTTP threads and the Raft tunnel's thread.
"""
