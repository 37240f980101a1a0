"""Entry points the CLI runs besides `freshet server start`.

Owns `local_cluster` (`freshet cluster up`: N nodes as child processes), `pod_env` (`server start
--from-env`: a Kubernetes pod's environment to a node config) and `storage_bench` (`freshet perf
storage`, `python -m freshet.server.tools.storage_bench`).

May import: the server's top level, freshet.storage. Never a role's package.
"""
