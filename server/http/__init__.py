"""The node's HTTP endpoint: /metrics, /healthz, /readyz, /status and the read-only web console.

Owns `server` (the threaded HTTP server over a read-only `NodeView`) and `console` (the HTML page).

May import: the server's top level and freshet.metadata (image). It reads the node through the
`NodeView` it is given, never the roles' packages.
"""
