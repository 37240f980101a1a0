"""The web console's data: what the console shows and does, as typed results (no HTML).

Modules (each docstring says what its functions return; the UI renders them):

- `backend`: `ConsoleBackend`, the node's parts the modules use, built by the node and reached
  through `NodeView.console_data()` (None on a node without the broker role);
- `actions`: admin actions as the viewer (create/delete topic, add partitions, alter configs,
  preferred election, reassign, reset group offsets, delete group): USE THESE for every change
  the console makes; they run the CLI's handlers and give the CLI's refusals (`ActionRefused`);
- `groups`: every consumer group of the cluster with members, assignment and lag;
- `messages`: the message browser and the server-side search, with a scan budget;
- `history`: the in-memory sampler of throughput and lag, and `render_svg` for one series;
- `cluster_charts`: every live broker's history fetched (Replication.ConsoleSeries) and merged.

Every public function takes the backend and the viewer as a `Caller` (server/security/authorizer.py):
`Caller(session.principal, client_host)` as server.py's `_console` builds it, `Caller()` (anonymous,
allowed everything) with security off. Refusals are `backend.ActionRefused` (code_name, message:
show them as the CLI prints them); bad input is ValueError naming the problem.

Thread-safety: every public function is called from the HTTP thread; each says what it blocks on.
"""
