"""Security of the node: TLS material and its rotation, certificates for local clusters, and (added
by the authentication and authorization work) SASL, sessions, the authorizer and the audit log.

Owns `tls` (the node's certificate, key and CA from disk, reloaded when the files change; gRPC
credentials and ssl contexts for every listener and inter-node connection; principals from peer
certificates), `node_identity` (inter-node gRPC channels, and the signed certificate proof that
names a calling node `User:<CN>` where grpcio cannot request a client certificate) and
`certificates` (a CA and the certificates it signs, for `cluster up --secure` and tests).

May import: the standard library, grpc, cryptography, freshet.metadata (pure models). Never the
roles' packages (broker, groups, controller, replication, http, kafka, tools) nor node: every
listener and channel of the node imports this package, not the other way round.

Thread-safety: each module says; `tls.TlsMaterial` is shared by the event loop, gRPC's threads,
the HTTP threads and the Raft tunnel's thread.
"""
