"""The console's URLs beyond `/`: which page a GET shows and what a POSTed action does.

Owns the routing table of the console's pages (GET /brokers, /topics?search=, /topics/NAME, ...)
and of its actions (POST /actions/NAME). Every action takes two POSTs: the first (from the form on
a page) validates the fields and answers a confirmation page that repeats them with
`confirmed=yes`; the second runs the action through console_data.actions (the node's gRPC admin
handlers as the viewer, the SDK's group admin after the viewer's rights are checked) and answers a
result page: what happened, or the node's one-line refusal. The HTTP
server (server.py) authenticates the visitor and checks the CSRF token before calling in here.

Imports: urllib, freshet.server.http (console_pages, console_data), freshet.server.security.
Thread-safety: `ConsoleRoutes` is thread-safe (it keeps no state of its own between requests).
"""

from __future__ import annotations

import dataclasses
import datetime
import urllib.parse
from collections.abc import Callable, Mapping, Sequence

from freshet.metadata.security import ResourceType
from freshet.server.errors import ActionRefusedError
from freshet.server.http import console_pages
from freshet.server.http.console_data import actions, cluster_charts, groups, messages
from freshet.server.http.console_data import logs as console_logs
from freshet.server.http.console_data.backend import ConsoleBackend
from freshet.server.http.console_pages import Chrome
from freshet.server.security.authorizer import Caller

#: GET paths the console answers besides `/` (a topic's pages are under /topics/).
PAGE_PREFIXES = ("/brokers", "/topics", "/groups", "/charts")


@dataclasses.dataclass(frozen=True)
class Answer:
    """An HTTP answer of the console: status code and UTF-8 HTML."""

    code: int
    body: bytes


class _FormError(ValueError):
    """A field of an action's form is missing or malformed; str() names it."""


def _field(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise _FormError(f"the form has no {name}")
    return value


def _integer(form: Mapping[str, str], name: str, minimum: int, required: bool = True) -> int | None:
    text = form.get(name, "").strip()
    if not text and not required:
        return None
    try:
        value = int(text)
    except ValueError:
        raise _FormError(f"{name} must be a whole number, not {text!r}") from None
    if value < minimum:
        raise _FormError(f"{name} must be at least {minimum}, not {value}")
    return value


def _replica_list(text: str) -> list[int]:
    try:
        replicas = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise _FormError(f"replicas must be broker ids separated by commas, not {text!r}") from None
    if len(set(replicas)) != len(replicas):
        raise _FormError(f"replicas list a broker twice: {text!r}")
    return replicas


def _config_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise _FormError(f"configs are key=value pairs separated by commas, not {item!r}")
        pairs.append((key.strip(), value.strip()))
    return pairs


@dataclasses.dataclass(frozen=True)
class Plan:
    """A validated action, ready to confirm and then run.

    Attributes:
        question: what the confirmation page asks ("Delete topic orders and all its records?").
        details: lines under the question.
        back: where the result page links back to.
        run: runs the action as the caller; returns the result message and detail lines.
        dangerous: the confirmation button is red (deletes, resets).
        preview: what the action would change, computed for the confirmation page (a dry run).
    """

    question: str
    details: Sequence[str]
    back: str
    button: str
    run: Callable[[ConsoleBackend, Caller], tuple[str, Sequence[str]]]
    dangerous: bool = False
    preview: Callable[[ConsoleBackend, Caller], Sequence[str]] | None = None


def _topic_back(topic: str) -> str:
    return "/topics/" + urllib.parse.quote(topic, safe="")


def _create_topic(form: Mapping[str, str]) -> Plan:
    name = _field(form, "topic")
    partitions = _integer(form, "partitions", 1, required=False)
    replication = _integer(form, "replication_factor", 1, required=False)
    configs = _config_pairs(form.get("configs", ""))
    details = [
        f"partitions: {partitions if partitions is not None else 'the cluster default (num.partitions)'}",
        f"replication factor: {replication if replication is not None else 'the cluster default'}",
    ] + [f"{key} = {value}" for key, value in configs]

    def run(backend: ConsoleBackend, caller: Caller) -> tuple[str, Sequence[str]]:
        result = actions.create_topic(backend, caller, name, partitions, replication, dict(configs))
        return (f"created topic {name} with {result.partitions} partitions, "
                f"replication factor {result.replication_factor}"), ()

    return Plan(f"Create topic {name}?", details, _topic_back(name), "Create topic", run)


def _delete_topic(form: Mapping[str, str]) -> Plan:
    name = _field(form, "topic")

    def run(backend: ConsoleBackend, caller: Caller) -> tuple[str, Sequence[str]]:
        actions.delete_topic(backend, caller, name)
        return f"deleted topic {name}", ()

    return Plan(f"Delete topic {name} and every record in it?", ["This cannot be undone."], "/topics",
                "Delete topic", run, dangerous=True)


def _add_partitions(form: Mapping[str, str]) -> Plan:
    name = _field(form, "topic")
    count = _integer(form, "count", 1)
    assert count is not None

    def run(backend: ConsoleBackend, caller: Caller) -> tuple[str, Sequence[str]]:
        actions.add_partitions(backend, caller, name, count)
        return f"topic {name} now has {count} partitions", ()

    details = ["Keys map to partitions by hash: records with a key may now go to another partition."]
    return Plan(f"Grow topic {name} to {count} partitions?", details, _topic_back(name), "Add partitions", run)


def _alter_config(form: Mapping[str, str]) -> Plan:
    name, key = _field(form, "topic"), _field(form, "key")
    operation = form.get("operation", "set")
    if operation not in ("set", "delete"):
        raise _FormError(f"operation must be set or delete, not {operation!r}")
    value = None if operation == "delete" else form.get("value", "").strip()

    def run(backend: ConsoleBackend, caller: Caller) -> tuple[str, Sequence[str]]:
        if value is None:
            actions.alter_configs(backend, caller, "topic", name, delete_configs=[key])
            return f"{key} of topic {name} is back to the cluster value or default", ()
        actions.alter_configs(backend, caller, "topic", name, set_configs={key: value})
        return f"{key} of topic {name} is now {value}", ()

    question = (f"Remove the override of {key} on topic {name}?" if value is None
                else f"Set {key} = {value} on topic {name}?")
    return Plan(question, [], _topic_back(name), "Change config", run)


def _elect_leaders(form: Mapping[str, str]) -> Plan:
    name = _field(form, "topic")

    def run(backend: ConsoleBackend, caller: Caller) -> tuple[str, Sequence[str]]:
        lines = []
        for result in actions.elect_preferred(backend, caller, name):
            where = f"{result.topic}-{result.partition}"
            if result.error is None:
                lines.append(f"{where}: leader is now {result.leader}")
            elif result.error == "ELECTION_NOT_NEEDED":
                lines.append(f"{where}: already led by its preferred replica {result.leader}")
            else:
                lines.append(f"{where}: not moved ({result.error})")
        return f"preferred-leader election on topic {name}", lines

    return Plan(f"Move leadership of every partition of {name} to its preferred replica?",
                ["A partition whose preferred replica is out of the ISR keeps its leader."],
                _topic_back(name), "Elect preferred leaders", run)


def _reassign(form: Mapping[str, str]) -> Plan:
    name = _field(form, "topic")
    partition = _integer(form, "partition", 0)
    assert partition is not None
    replicas = _replica_list(form.get("replicas", ""))

    def run(backend: ConsoleBackend, caller: Caller) -> tuple[str, Sequence[str]]:
        actions.reassign(backend, caller, name, partition, replicas)
        if not replicas:
            return f"cancelled the reassignment of {name}-{partition}", ()
        return f"reassigning {name}-{partition} to {','.join(map(str, replicas))}: progress on the topic page", ()

    if not replicas:
        return Plan(f"Cancel the reassignment in progress of {name}-{partition}?", [], _topic_back(name),
                    "Cancel reassignment", run)
    return Plan(f"Move {name}-{partition} to replicas {','.join(map(str, replicas))}?",
                ["New replicas copy the log first; the old ones leave once they are in sync."],
                _topic_back(name), "Reassign", run)


def _group_back(group: str) -> str:
    return "/groups/" + urllib.parse.quote(group, safe="")


def _reset_offsets(form: Mapping[str, str]) -> Plan:
    """Reset a group's offsets of one topic: earliest, latest, an offset, a date and time, or a
    shift of each partition's committed offset by N (clamped to the log, as the CLI clamps)."""
    group, topic = _field(form, "group"), _field(form, "topic")
    mode = form.get("mode", "")
    value = form.get("value", "").strip()
    if mode not in ("earliest", "latest", "offset", "datetime", "shift"):
        raise _FormError(f"mode must be earliest, latest, offset, datetime or shift, not {mode!r}")
    target: dict = {}
    if mode in ("earliest", "latest"):
        target = {f"to_{mode}": True}
    elif mode == "offset":
        target = {"to_offset": _integer(form, "value", 0)}
    elif mode == "datetime":
        if not value:
            raise _FormError("a date and time is needed, e.g. 2026-12-07T09:00 (UTC)")
        try:
            datetime.datetime.fromisoformat(value)
        except ValueError:
            raise _FormError(f"value must be an ISO date and time such as 2026-12-07T09:00, not {value!r}") from None
        target = {"to_datetime": value}
    else:
        shift = _integer(form, "value", -(2**63))
        assert shift is not None

    def plans(backend: ConsoleBackend, caller: Caller, execute: bool) -> list:
        if mode != "shift":
            return actions.reset_group_offsets(backend, caller, group, topic, execute=execute, **target)
        committed = {p.partition: p.committed_offset for p in groups.describe_group(backend, caller, group).partitions
                     if p.topic == topic and p.committed_offset is not None}
        if not committed:
            raise _FormError(f"group {group} has no committed offset on {topic} to shift")
        return [plan for partition, offset in sorted(committed.items())
                for plan in actions.reset_group_offsets(backend, caller, group, topic, to_offset=max(0, offset + shift),
                                                        partitions=[partition], execute=execute)]

    def lines(found: list) -> list[str]:
        return [f"{p.topic}-{p.partition}: {'-' if p.current_offset is None else p.current_offset} -> {p.new_offset}"
                for p in found]

    def run(backend: ConsoleBackend, caller: Caller) -> tuple[str, Sequence[str]]:
        return f"reset the offsets of group {group} on {topic}", lines(plans(backend, caller, True))

    what = {"earliest": "the earliest offsets", "latest": "the latest offsets", "offset": f"offset {value}",
            "datetime": f"the first offsets at or after {value} UTC", "shift": f"their committed offsets shifted by {value}"}
    return Plan(f"Reset the offsets of group {group} on topic {topic} to {what[mode]}?", [], _group_back(group),
                "Reset offsets", run, dangerous=True, preview=lambda backend, caller: lines(plans(backend, caller, False)))


def _delete_group(form: Mapping[str, str]) -> Plan:
    group = _field(form, "group")

    def run(backend: ConsoleBackend, caller: Caller) -> tuple[str, Sequence[str]]:
        actions.delete_group(backend, caller, group)
        return f"deleted group {group} and its committed offsets", ()

    return Plan(f"Delete group {group} and its committed offsets?", ["This cannot be undone."], "/groups",
                "Delete group", run, dangerous=True)


def _browse_query(topic: str, params: Mapping[str, str], form: dict) -> messages.BrowseQuery:
    """The browser form's query (`form` gets the parsed partition back). Raises _FormError."""
    partition = _integer(params, "partition", 0, required=False)
    form["partition"] = partition
    offset = _integer(params, "offset", 0, required=False)
    limit = _integer(params, "limit", 1, required=False) or 50
    timestamp_ms = None
    if params.get("time", "").strip() and offset is None:
        try:
            moment = datetime.datetime.fromisoformat(params["time"].strip()).replace(tzinfo=datetime.UTC)
        except ValueError:
            raise _FormError(f"time must be a date and time such as 2026-12-07T09:00, not {params['time']!r}") from None
        timestamp_ms = (moment - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)) // datetime.timedelta(milliseconds=1)
    search = None
    if params.get("search", ""):
        where = params.get("in", "all")
        if where not in ("all", "key", "value", "headers"):
            raise _FormError(f"search in must be all, key, value or headers, not {where!r}")
        search = messages.SearchSpec(
            params["search"], is_regex=params.get("regex") == "1", ignore_case=params.get("icase") == "1",
            in_keys=where in ("all", "key"), in_values=where in ("all", "value"), in_headers=where in ("all", "headers"),
        )
    resume = None
    if params.get("resume"):
        try:
            resume = {int(p): int(o) for p, _, o in (item.partition(":") for item in params["resume"].split(","))}
        except ValueError:
            raise _FormError(f"resume must be partition:offset pairs, not {params['resume']!r}") from None
    return messages.BrowseQuery(topic, partition, offset, timestamp_ms, limit, search, resume=resume)


#: POST /actions/NAME -> builds the action's plan from its form (raises _FormError).
ACTIONS: dict[str, Callable[[Mapping[str, str]], Plan]] = {
    "create-topic": _create_topic,
    "delete-topic": _delete_topic,
    "add-partitions": _add_partitions,
    "alter-config": _alter_config,
    "elect-leaders": _elect_leaders,
    "reassign": _reassign,
    "reset-offsets": _reset_offsets,
    "delete-group": _delete_group,
}


class ConsoleRoutes:
    """The console's pages and actions over the node's readers. Thread-safe.

    Args:
        view: the node's NodeView (server.py): image, status and `console_data()`, the data
            layer's backend (None on a node without the broker role: no action there).
    """

    def __init__(self, view) -> None:
        self._view = view

    @staticmethod
    def serves(path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/") for prefix in PAGE_PREFIXES)

    def get(self, path: str, query: str, chrome: Chrome, caller: Caller) -> Answer:
        params = {name: values[0] for name, values in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
        view = self._view
        if path == "/brokers":
            return Answer(200, console_pages.brokers_page(chrome, view.image(), view.status()))
        if path == "/topics":
            page = console_pages.topics_page(chrome, view.image(), params.get("search", ""), params.get("internal") == "1")
            return Answer(200, page)
        if path.startswith("/topics/") and path.endswith("/messages"):
            return self._messages(urllib.parse.unquote(path[len("/topics/"):-len("/messages")]), params, chrome, caller)
        if path.startswith("/topics/"):
            name = urllib.parse.unquote(path[len("/topics/"):])
            if "/" not in name:
                return self._topic(name, chrome)
        if path == "/charts":
            backend = view.console_data()
            history = None if backend is None else backend.history
            line = "this node has no broker role, so it samples no throughput or lag: use the console of a broker"
            charts = None if history is None else cluster_charts.cluster_charts(backend)
            return Answer(200, console_pages.charts_page(chrome, history, params.get("search", ""), line, charts))
        if path == "/groups" or path.startswith("/groups/"):
            return self._groups(path, chrome, caller)
        return Answer(404, console_pages.result_page(chrome, "Not found", f"no console page at {path}", False, "/", "overview"))

    def _messages(self, name: str, params: Mapping[str, str], chrome: Chrome, caller: Caller) -> Answer:
        """The message browser: the form's fields become a BrowseQuery; "older" links carry
        `resume` (partition:next_offset,...) so the next page continues where this one stopped."""
        topic = self._view.image().topic(name)
        if topic is None or not chrome.may_describe(ResourceType.TOPIC, name):
            return Answer(404, console_pages.result_page(chrome, "Topic not found", f"no topic {name} (or you may not Describe it)",
                                                         False, "/topics", "back to topics"))
        form = {
            "partition": None, "offset": params.get("offset", ""), "time": params.get("time", ""),
            "limit": params.get("limit", "") or "50", "search": params.get("search", ""),
            "is_regex": params.get("regex") == "1", "ignore_case": params.get("icase") == "1",
            "search_in": params.get("in", "all"), "limit_max": messages.LIMIT_MAX,
        }
        result, error, older = None, "", ""
        backend = self._view.console_data()
        try:
            query = _browse_query(name, params, form)
            if backend is None:
                error = "this node has no broker role, so no message browser: use the console of a broker"
            else:
                result = messages.browse(backend, caller, query)
        except (_FormError, ValueError) as problem:
            error = str(problem)
        except ActionRefusedError as refused:
            error = f"{refused.message} ({refused.code_name})"
        if result is not None and result.has_older:
            resume = ",".join(f"{p.partition}:{p.next_offset}" for p in result.positions if p.next_offset is not None)
            kept = {key: value for key, value in params.items() if key not in ("resume", "offset", "time")}
            older = f"/topics/{urllib.parse.quote(name, safe='')}/messages?" + urllib.parse.urlencode({**kept, "resume": resume})
        return Answer(200, console_pages.messages_page(chrome, topic, form, result, error, older))

    def _groups(self, path: str, chrome: Chrome, caller: Caller) -> Answer:
        backend = self._view.console_data()
        if backend is None:
            line = "this node has no broker role, so no view of the consumer groups: use the console of a broker"
            return Answer(200, console_pages.groups_page(chrome, None, line))
        if path == "/groups":
            return Answer(200, console_pages.groups_page(chrome, groups.cluster_groups(backend, caller)))
        name = urllib.parse.unquote(path[len("/groups/"):])
        try:
            detail = groups.describe_group(backend, caller, name)
        except ActionRefusedError as error:
            code = 404 if error.code_name in ("GROUP_ID_NOT_FOUND", "GROUP_AUTHORIZATION_FAILED") else 503
            return Answer(code, console_pages.result_page(chrome, f"Group {name}", error.message, False, "/groups",
                                                          "back to groups", [error.code_name]))
        return Answer(200, console_pages.group_page(chrome, detail))

    def _topic(self, name: str, chrome: Chrome) -> Answer:
        """The topic page with every partition's log from its leader (console_data.logs: the
        CLI's DescribeLogDirs, bounded in time); looked up only for a viewer that may Describe it."""
        image = self._view.image()
        topic = image.topic(name)
        backend = self._view.console_data()
        logs, note = None, ""
        if backend is None:
            note = "this node has no broker role, so it asks no broker for log offsets and sizes: use the console of a broker"
        elif topic is not None and chrome.may_describe(ResourceType.TOPIC, name):
            logs = console_logs.topic_logs(backend, topic)
        code, page = console_pages.topic_page(chrome, image, name, logs, note)
        return Answer(code, page)

    def post(self, path: str, form: Mapping[str, str], chrome: Chrome, caller: Caller) -> Answer:
        """An action (CSRF already checked): the confirmation page, or with `confirmed=yes` the result."""
        name = path[len("/actions/"):] if path.startswith("/actions/") else ""
        builder = ACTIONS.get(name)
        if builder is None:
            return Answer(404, console_pages.result_page(chrome, "Unknown action", f"no action {name or path}", False, "/", "overview"))
        try:
            plan = builder(form)
        except _FormError as error:
            return Answer(400, console_pages.result_page(chrome, "Bad form", str(error), False, "/topics", "back"))
        backend = self._view.console_data()
        if backend is None:
            return Answer(503, console_pages.result_page(
                chrome, "Not possible here", "this node has no broker role: use the console of a broker", False,
                plan.back, "back"))
        try:
            if form.get("confirmed") != "yes":
                details = list(plan.details) + list(plan.preview(backend, caller) if plan.preview else ())
                fields = [(key, value) for key, value in form.items() if key not in ("csrf", "confirmed")]
                page = console_pages.confirm_page(chrome, plan.question, path, fields, plan.back, plan.button,
                                                  details, plan.dangerous)
                return Answer(200, page)
            message, details = plan.run(backend, caller)
        except ActionRefusedError as error:
            return Answer(409, console_pages.result_page(chrome, "Refused", error.message, False, plan.back, "back",
                                                         [error.code_name]))
        except ValueError as error:            # _FormError too (found while planning)
            return Answer(400, console_pages.result_page(chrome, "Bad form", str(error), False, plan.back, "back"))
        return Answer(200, console_pages.result_page(chrome, "Done", message, True, plan.back, "continue", details))
