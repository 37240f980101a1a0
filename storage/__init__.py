"""Freshet storage: the record-batch format and the on-disk partition log.

Owns the record-batch codec, segments with their offset and time indexes, the partition log
(append, read, truncate, roll, retention, compaction) and crash recovery.

Imports only the standard library, crcmod and compression libraries: no grpc, no wire types, no
metadata, no server (checked by the import-linter contracts in pyproject.toml).
"""
