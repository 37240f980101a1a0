"""Freshet metadata: the replicated cluster state that replaces ZooKeeper.

Owns the command types, the pure deterministic state machine, the immutable MetadataImage read by
every other thread, the snapshot codec, the quorum adapter over pysyncobj (metadata/quorum.py is
the only module that imports pysyncobj) and the active controller's pure decisions.

Modules:
    errors.py         domain exceptions (no gRPC codes)
    clock.py          the injected Clock (SystemClock, ManualClock): the controller's only time source
    configs.py        config schema: keys, types, Kafka defaults, validators, typed views
    commands.py       building, encoding and decoding MetadataCommand (for proposers)
    image.py          MetadataImage and its parts (immutable, structurally shared)
    state_machine.py  apply(image, command, offset) -> (image, result); pure, never raises
    topic_rules.py    topic name and config checks shared by the controller and the state machine
    snapshot.py       MetadataSnapshot codec (byte-identical) and the quorum's snapshot file
    journal.py        the voter's durable Raft log and meta (fsync, torn-tail recovery)
    quorum.py         MetadataQuorum: one voter of the Raft group over pysyncobj
    quorum_snapshots.py    the voter's snapshot file (read, written, loaded) for quorum.py
    quorum_publication.py  recent commands for watchers and listeners, for quorum.py
    placement.py      replica placement for new partitions (Kafka's, rack-aware), deterministic
    controller/       the active controller's decisions (a facade over three modules):
      broker_sessions.py  sessions, heartbeats, expiry, fencing/unfencing, controlled shutdown, poll
      elections.py        leader elections, ISR changes (AlterPartition), reassignment steps
      topic_planning.py   topic and partition creation (placement), config changes, request ids

Imports no grpc, storage, server, client or cli. Importing this package imports nothing else:
readers of images never load pysyncobj.
"""
