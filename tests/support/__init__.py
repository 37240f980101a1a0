"""Helpers shared by the tests and benchmarks; nothing here is collected as a test.

Import them as `from tests.support.<module> import ...` (pyproject's `pythonpath = ["."]` puts the
repository root on sys.path for pytest; benchmarks run as `python -m tests.bench.<name>`).

- waiting: `wait_until`, the one bounded poll every test uses;
- ports: free loopback ports (`free_ports`, `free_port_block`, `port_block_is_free`);
- node_cluster / cli_harness: real `freshet server start` / `freshet cluster up` processes;
- quorum_cluster (+ quorum_harness, run as a child process): metadata voters in their own processes;
- inprocess_nodes: a cluster of real nodes on one event loop in the test process;
- quorum_fixtures: in-process metadata quorums;
- metadata_script: a scripted metadata log over the real state machine;
- storage_helpers: batches and crash simulation for the storage tests;
- fake_broker / fake_groups: the in-process fake cluster of the client SDK tests;
- memory_transport: an in-memory gRPC network for client tests over the `transport=` seam;
- transcript: the golden-transcript driver (etcd's datadriven).
"""
