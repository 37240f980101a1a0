"""Freshet storage: the record-batch format and the on-disk partition log.

Owns the record-batch codec, segments with their offset and time indexes, the partition log
(append, read, truncate, roll, retention, compaction) and crash recovery.

Imports only the standard library, crcmod and compression libraries: no grpc, no wire types, no
metadata, no server (checked by the import-linter contracts in pyproject.toml).

The package imports nothing itself: the client SDK imports `record_batch`, `compression` and
`errors` alone. Thread-safety is stated per module; `log.PartitionLog` and `log_manager.LogManager`
are thread-safe, the cleaner is the only thread the layer starts.
"""
