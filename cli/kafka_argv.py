"""Kafka's command-line spellings, mapped onto Freshet's commands before click parses argv.

Owns the one table of aliases (`ACTION_FLAGS`, `POSITIONAL_OPTIONS`, `RENAMED_OPTIONS`,
`PERF_PRODUCER_PROPS`) and `rewrite(argv)`, which main() runs once after lifting the global options:

- an action flag stands for the subcommand: `freshet topic --create --topic T` is
  `freshet topic create T` (kafka-topics.sh's --create/--list/--describe/--delete/--alter;
  kafka-consumer-groups.sh's --list/--describe/--delete/--reset-offsets);
- an option that names what Freshet takes as a positional argument becomes that argument:
  `--topic T` (topic commands, produce, consume), `--group G` (group describe/delete/reset-offsets);
- a renamed option: `--broker-list` is `--bootstrap` (except `partition reassign`, where
  `--broker-list` is Kafka's list of broker ids); per command (`COMMAND_OPTIONS`):
  `--under-replicated-partitions`, `--unavailable-partitions`, `--request-required-acks`;
- kafka-producer-perf-test's `--producer-props k=v k=v ...` (several values after one flag) becomes
  the `freshet perf produce` options;
- kafka-configs.sh's line (`freshet config --entity-type topics --entity-name T --alter
  --add-config k=v`) becomes `freshet topic config T --set k=v` (brokers, their default and groups:
  `freshet config --broker ID | --cluster | --group G`).

Options that mean the same in both spellings (`--bootstrap-server`, `--partitions`, `--from-beginning`,
`--property`, ...) are declared on the commands themselves. The rewrite is pure (argv in, argv out)
and leaves everything after `--` alone.

Imports: nothing of Freshet. Thread-safety: pure functions over their arguments.
"""

from __future__ import annotations

#: Root options main() may have put before the command: those that take a value, and flags.
_ROOT_VALUE_OPTIONS = frozenset({"--tls-ca", "--user", "--password-file", "--command-config"})
_ROOT_FLAGS = frozenset({"--debug", "--version", "--help", "--install-completion", "--show-completion"})

#: Kafka's action flags: command -> {flag: subcommand}.
ACTION_FLAGS: dict[str, dict[str, str]] = {
    "topic": {
        "--create": "create",
        "--list": "list",
        "--describe": "describe",
        "--delete": "delete",
        "--alter": "alter",
    },
    "group": {
        "--list": "list",
        "--describe": "describe",
        "--delete": "delete",
        "--reset-offsets": "reset-offsets",
    },
}

#: Options that name a positional argument: command path -> option.
POSITIONAL_OPTIONS: dict[tuple[str, ...], str] = {
    ("topic", "create"): "--topic",
    ("topic", "describe"): "--topic",
    ("topic", "delete"): "--topic",
    ("topic", "alter"): "--topic",
    ("topic", "config"): "--topic",
    ("produce",): "--topic",
    ("consume",): "--topic",
    ("group", "describe"): "--group",
    ("group", "delete"): "--group",
    ("group", "reset-offsets"): "--group",
}

#: Renamed options: Kafka's name -> (Freshet's name, command paths where it keeps its own meaning).
RENAMED_OPTIONS: dict[str, tuple[str, frozenset[tuple[str, ...]]]] = {
    "--broker-list": ("--bootstrap", frozenset({("partition", "reassign")})),
}

#: Kafka's names of options one command has: command path -> {Kafka's name: Freshet's name}.
COMMAND_OPTIONS: dict[tuple[str, ...], dict[str, str]] = {
    ("topic", "describe"): {
        "--under-replicated-partitions": "--under-replicated",
        "--unavailable-partitions": "--unavailable",
    },
    ("produce",): {"--request-required-acks": "--acks"},
}

#: kafka-producer-perf-test's --producer-props keys -> `freshet perf produce` options.
PERF_PRODUCER_PROPS: dict[str, str] = {
    "bootstrap.servers": "--bootstrap",
    "acks": "--acks",
    "batch.size": "--batch-size",
    "linger.ms": "--linger-ms",
    "compression.type": "--compression",
    "max.in.flight.requests.per.connection": "--max-in-flight",
}


class KafkaSpellingError(ValueError):
    """A Kafka spelling that cannot be mapped (two action flags, an unknown producer prop):
    main() prints it as one usage line (exit 2)."""


def rewrite(argv: list[str]) -> list[str]:
    """argv (without the program name) with Kafka's spellings turned into Freshet's.

    Raises:
        KafkaSpellingError: two action flags, or a --producer-props key with no Freshet option.
    """
    start = _command_index(argv)
    if start >= len(argv):
        return list(argv)
    head, body = list(argv[: start + 1]), list(argv[start + 1 :])
    tail: list[str] = []
    if "--" in body:
        cut = body.index("--")
        body, tail = body[:cut], body[cut:]
    command = argv[start]
    if command == "config" and any(item.partition("=")[0] in _CONFIGS_OPTIONS for item in body):
        return rewrite(head[:-1] + _kafka_configs(body) + tail)
    if command in ACTION_FLAGS and (not body or body[0].startswith("-")):
        body = _action_to_subcommand(command, body)
    path = (command, body[0]) if command in ACTION_FLAGS and body else (command,)
    body = _rename_options(path, body)
    if command == "perf" and body[:1] == ["produce"]:
        body = _expand_producer_props(body)
    option = POSITIONAL_OPTIONS.get(path)
    if option is not None:
        body = _option_to_positional(option, body, after=len(path) - 1)
    return head + body + tail


def _command_index(argv: list[str]) -> int:
    """Where the command name is: after the root options main() moved in front of it."""
    index = 0
    while index < len(argv):
        name = argv[index].partition("=")[0]
        if name in _ROOT_VALUE_OPTIONS:
            index += 1 if "=" in argv[index] else 2
        elif name in _ROOT_FLAGS:
            index += 1
        else:
            return index
    return index


def _action_to_subcommand(command: str, body: list[str]) -> list[str]:
    flags = ACTION_FLAGS[command]
    found = [item for item in body if item in flags]
    if not found:
        return body
    if len(set(found)) > 1:
        raise KafkaSpellingError(
            f"freshet {command}: give one action, not {' and '.join(dict.fromkeys(found))}"
        )
    return [flags[found[0]], *[item for item in body if item != found[0]]]


def _rename_options(path: tuple[str, ...], body: list[str]) -> list[str]:
    """Kafka's option names as Freshet's: everywhere (except on the command paths where they keep
    their own meaning), and those of this command."""
    leading = (path[0], *body[:1])
    own = COMMAND_OPTIONS.get(path, {})
    renamed = []
    for item in body:
        name, equals, value = item.partition("=")
        target = RENAMED_OPTIONS.get(name)
        if target is not None and leading not in target[1]:
            item = target[0] + equals + value
        elif name in own:
            item = own[name] + equals + value
        renamed.append(item)
    return renamed


def _option_to_positional(option: str, body: list[str], *, after: int) -> list[str]:
    """Remove the first `option VALUE` (or `option=VALUE`) and put VALUE after the subcommand."""
    for index, item in enumerate(body):
        if item == option and index + 1 < len(body):
            value, rest = body[index + 1], body[:index] + body[index + 2 :]
        elif item.startswith(option + "="):
            value, rest = item[len(option) + 1 :], body[:index] + body[index + 1 :]
        else:
            continue
        return rest[:after] + [value] + rest[after:]
    return body


def _expand_producer_props(body: list[str]) -> list[str]:
    """`--producer-props k=v k=v` (values up to the next option) as Freshet's perf options."""
    expanded: list[str] = []
    index = 0
    while index < len(body):
        item = body[index]
        index += 1
        if item != "--producer-props":
            expanded.append(item)
            continue
        while index < len(body) and not body[index].startswith("-"):
            key, equals, value = body[index].partition("=")
            if not equals or key not in PERF_PRODUCER_PROPS:
                known = ", ".join(PERF_PRODUCER_PROPS)
                raise KafkaSpellingError(
                    f"--producer-props {body[index]!r}: freshet perf produce takes {known}"
                )
            expanded += [PERF_PRODUCER_PROPS[key], value]
            index += 1
    return expanded


# =================================================================================================
# kafka-configs.sh


#: kafka-configs.sh's options that `freshet config` does not have; any of them means Kafka's spelling.
_CONFIGS_OPTIONS = frozenset(
    {
        "--entity-type",
        "--entity-name",
        "--entity-default",
        "--topic",
        "--broker-defaults",
        "--describe",
        "--alter",
        "--add-config",
        "--delete-config",
    }
)
_CONFIGS_FLAGS = frozenset({"--entity-default", "--broker-defaults", "--describe", "--alter"})


def _kafka_configs(body: list[str]) -> list[str]:
    """kafka-configs.sh's line as `topic config NAME` / `config --broker ID|--cluster|--group G`
    (the command and its options, without the root options): --entity-type topics|brokers|groups
    with --entity-name NAME or --entity-default (the shortcuts --topic, --broker, --group,
    --broker-defaults too), --add-config k=v,k2=[a,b] as --set, --delete-config k,k2 as --delete;
    --describe and --alter are implied by whether anything is set or deleted.

    Raises:
        KafkaSpellingError: an entity type Freshet has no configs for, or a topic without a name.
    """
    values: dict[str, str] = {}
    flags: set[str] = set()
    changes: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(body):
        name, equals, value = body[index].partition("=")
        index += 1
        if name in _CONFIGS_FLAGS:
            flags.add(name)
            continue
        if name not in _CONFIGS_OPTIONS:
            rest.append(body[index - 1])
            continue
        if not equals:
            if index >= len(body):
                raise KafkaSpellingError(f"{name} needs a value")
            value, index = body[index], index + 1
        if name == "--add-config":
            changes += [item for pair in _split_config_list(value) for item in ("--set", pair)]
        elif name == "--delete-config":
            changes += [item for key in value.split(",") if key.strip() for item in ("--delete", key.strip())]
        else:
            values[name] = value
    entity = values.get("--entity-type", "topics" if "--topic" in values else None)
    entity_name = values.get("--entity-name", values.get("--topic"))
    if entity is None:  # --broker N / --group G / --broker-defaults
        return ["config", *(["--cluster"] if "--broker-defaults" in flags else []), *rest, *changes]
    if entity in ("topics", "topic"):
        if entity_name is None:
            raise KafkaSpellingError("kafka-configs --entity-type topics needs --entity-name TOPIC")
        return ["topic", "config", entity_name, *rest, *changes]
    if entity in ("brokers", "broker"):
        is_default = entity_name is None or "--entity-default" in flags
        target = ["--cluster"] if is_default else ["--broker", entity_name]
        return ["config", *target, *rest, *changes]
    if entity in ("groups", "group") and entity_name is not None:
        return ["config", "--group", entity_name, *rest, *changes]
    raise KafkaSpellingError(
        f"kafka-configs --entity-type {entity}: freshet has configs for topics, brokers (and their default) and groups"
    )


def _split_config_list(text: str) -> list[str]:
    """Kafka's --add-config list: `k1=v1,k2=[a,b],k3=v3` -> ["k1=v1", "k2=a,b", "k3=v3"]."""
    pairs: list[str] = []
    current = ""
    depth = 0
    for char in text:
        if char == "," and depth == 0:
            pairs.append(current)
            current = ""
            continue
        depth += {"[": 1, "]": -1}.get(char, 0)
        current += char
    pairs.append(current)
    return [
        pair.replace("=[", "=", 1).removesuffix("]") if "=[" in pair else pair
        for pair in pairs
        if pair.strip()
    ]
