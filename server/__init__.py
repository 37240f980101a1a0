"""Freshet server: the node process.

Wires storage and metadata to the network: node lifecycle, gRPC services, replica manager and
fetchers, produce/fetch purgatories, group coordinator, the single error-to-status table, metrics
and HTTP. May import every layer below it; never the cli.
"""
