"""Every console page, rendered server-side with Jinja2 templates (the one way the console renders).

Owns the Jinja2 environment (templates in server/http/templates/, package data; autoescape on,
undefined names are errors) and, per page, the function that turns the node's state into the
template's rows: the overview at `/`, the login page, brokers, topics with a server-side search,
one topic (partitions with every leader's log, reassignments with progress per adding replica,
configs with their source), groups, messages, charts, the confirmation and result pages of actions.

What a viewer may see (console.Viewer): topics and groups it may Describe, the cluster panels
(brokers, controller, quorum, reassignments) with Describe on the cluster. What it may do is not
decided here: actions go to the node's admin handlers as the viewer (console_routes.py and
console_data/actions.py), which refuse like the CLI.

Imports: jinja2, freshet.metadata (image, configs, controller, security), console (Viewer, style).
Thread-safety: pure functions over immutable inputs; the Environment is thread-safe once built.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence

import jinja2
from freshet.metadata.configs import SCHEMA, TOPIC_KEYS
from freshet.metadata.controller import broker_loads, is_internal_topic
from freshet.metadata.image import NO_LEADER, MetadataImage, PartitionImage, TopicImage
from freshet.metadata.security import Operation, ResourceType
from freshet.server.http.console import NAV_LINKS, Viewer, broker_state, ids_text
from freshet.server.http.console import STYLE as BASE_STYLE
from freshet.server.http.console_data.history import render_svg
from freshet.server.http.console_data.logs import TopicLogs

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("freshet.server.http", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

NAV = NAV_LINKS

STYLE = BASE_STYLE + """
header{display:flex;gap:1.5em;align-items:center;border-bottom:1px solid #ddd;padding-bottom:.5em;margin-bottom:1em}
nav a{margin-right:1em;text-decoration:none;color:#0550ae}nav a.current{font-weight:700;color:#222}
.who{margin-left:auto}.brand{font-size:1.2em}form.action{margin:.6em 0}label.inline{display:inline;margin-right:1em}
button.danger{color:#fff;background:#b00020;border:1px solid #b00020}.confirm{font-size:1.1em}
form.bar{margin:.4em 0}td pre{margin:0;white-space:pre-wrap;word-break:break-all;max-width:48em;font-size:12px}
.header pre{display:inline}pre.hex{color:#555}figure.chart{display:inline-block;margin:.3em}
"""


#: The overview reloads itself this often (a meta refresh: no script).
OVERVIEW_REFRESH_SECONDS = 5
#: Pages without forms to fill reload themselves (a meta refresh: no script) this often.
PAGE_REFRESH_SECONDS = 10
#: The charts reload a little slower than the history samples (every 10 s).
CHARTS_REFRESH_SECONDS = 30
#: A topic page reloads itself this often while one of its partitions is being reassigned (progress).
REASSIGNMENT_REFRESH_SECONDS = 5


@dataclasses.dataclass(frozen=True)
class Chrome:
    """What every page shows around its body: who is signed in and the form token. Thread-safe.

    Attributes:
        viewer: the logged-in principal (security on), None with security off.
        csrf_token: put in every form; the server refuses a POST without it.
    """

    viewer: Viewer | None
    csrf_token: str

    def may_describe(self, resource_type: ResourceType, name: str) -> bool:
        return self.viewer is None or self.viewer.allows(Operation.DESCRIBE, resource_type, name)

    def may_describe_cluster(self) -> bool:
        return self.viewer is None or self.viewer.may_describe_cluster()


def render(template: str, chrome: Chrome, title: str, section: str, **context) -> bytes:
    """A page (UTF-8 HTML): `template` inside the layout (navigation, principal, logout)."""
    page = _ENVIRONMENT.get_template(template).render(
        title=title, section=section, nav=context.pop("nav", NAV), style=STYLE, viewer=chrome.viewer,
        csrf_token=chrome.csrf_token, refresh_seconds=context.pop("refresh_seconds", 0), **context,
    )
    return page.encode()


def _broker_rows(image: MetadataImage) -> list[dict]:
    replicas, leaders = broker_loads(image)
    rows = []
    for broker in sorted(image.brokers.values(), key=lambda b: b.node_id):
        state, state_class = broker_state(broker, replicas[broker.node_id])
        rows.append({
            "node_id": broker.node_id, "is_controller": broker.node_id == image.controller_id,
            "address": f"{broker.host}:{broker.port}", "rack": broker.rack or "-", "state": state,
            "state_class": state_class, "epoch": broker.broker_epoch,
            "replicas": replicas[broker.node_id], "leaders": leaders[broker.node_id],
        })
    return rows


def _controller(status: Mapping) -> object:
    controller = status.get("controller_id")
    return controller if controller not in (None, -1) else "none"


def brokers_page(chrome: Chrome, image: MetadataImage, status: Mapping) -> bytes:
    if not chrome.may_describe_cluster():
        assert chrome.viewer is not None
        denied = f"{chrome.viewer.principal} is not authorized to Describe the cluster: brokers are not shown."
        return render("brokers.html", chrome, "Brokers", "/brokers", denied=denied)
    return render(
        "brokers.html", chrome, "Brokers", "/brokers", denied="", brokers=_broker_rows(image),
        refresh_seconds=PAGE_REFRESH_SECONDS, controller=_controller(status), quorum=status.get("quorum"),
    )


def _disk(disk: Mapping | None) -> dict | None:
    """This node's log directory (/status "disk") in GiB, None when not known."""
    if not disk or disk.get("total_bytes", -1) < 0:
        return None
    return {"directory": disk["directory"], "is_full": disk["state"] == "full", "free_gib": disk["free_bytes"] / 2**30,
            "total_gib": disk["total_bytes"] / 2**30, "high_water_gib": disk.get("high_water_bytes", 0) / 2**30}


def _coordinated_group(group: Mapping) -> dict:
    """A group of NodeView.groups() for the overview: lag, lag time per partition and whether it is
    over its lag.alert.seconds (on which topics)."""
    return {
        "group": group.get("group"), "state": group.get("state"), "generation": group.get("generation"),
        "members": group.get("members"), "lag": group.get("lag"), "lag_partitions": group.get("lag_partitions") or [],
        "lag_alert_seconds": group.get("lag_alert_seconds") or 0, "is_lag_alerting": bool(group.get("is_lag_alerting")),
        "late_topics": ", ".join(t["topic"] for t in group.get("lag_topics", ()) if t["is_alerting"]),
    }


def overview_page(chrome: Chrome, image: MetadataImage, status: Mapping, groups: Sequence[Mapping] | None) -> bytes:
    """The overview at `/`: this node (readiness, disk), partition health counts, the controller,
    the quorum, brokers and reassignments (with Describe on the cluster, else one line each), the
    groups THIS node coordinates with lag and lag time (`groups`: NodeView.groups(), None without a
    coordinator), and every topic's partitions; topics and groups filtered by Describe."""
    topics = [t for t in sorted(image.topics_by_id.values(), key=lambda t: t.name)
              if chrome.may_describe(ResourceType.TOPIC, t.name)]
    if groups is not None:
        groups = [_coordinated_group(g) for g in groups if chrome.may_describe(ResourceType.GROUP, str(g.get("group")))]
    denied = ""
    if not chrome.may_describe_cluster():
        assert chrome.viewer is not None
        denied = f"{chrome.viewer.principal} is not authorized to Describe the cluster"
    partitions = [p for t in topics for p in t.partitions]
    every_topic = sorted(image.topics_by_id.values(), key=lambda t: t.name)       # cluster view: every move
    reassignments = [{"topic": t.name, **_reassignment_row(p, None)} for t in every_topic for p in t.partitions
                     if p.is_reassigning] if not denied else []
    return render(
        "overview.html", chrome, "Overview", "/", refresh_seconds=OVERVIEW_REFRESH_SECONDS,
        node={"id": status.get("node_id"), "roles": ", ".join(status.get("roles", [])), "ready": bool(status.get("ready")),
              "readiness": status.get("readiness", "")},
        cluster_id=image.cluster_id or "-", metadata_offset=image.offset, disk=_disk(status.get("disk")),
        partitions=len(partitions), offline=sum(p.leader == NO_LEADER for p in partitions),
        short=sum(len(p.isr) < len(p.replicas) for p in partitions), denied=denied,
        controller=_controller(status), quorum=status.get("quorum"), brokers=_broker_rows(image) if not denied else [],
        reassignments=reassignments, groups=groups,
        groups_empty=("no group that you may Describe is coordinated by this node" if chrome.viewer
                      else "no group coordinated by this node"),
        topics=[{"name": t.name, "is_internal": is_internal_topic(t.name),
                 "partitions": [_partition_row(p, None) for p in t.partitions]} for t in topics],
        topics_empty="no topic that you may Describe" if chrome.viewer else "no topics",
    )


def _topic_row(topic: TopicImage) -> dict:
    partitions = topic.partitions
    return {
        "name": topic.name, "is_internal": is_internal_topic(topic.name), "partitions": len(partitions),
        "replication": max((len(p.replicas) for p in partitions), default=0),
        "offline": sum(p.leader == NO_LEADER for p in partitions),
        "short": sum(len(p.isr) < len(p.replicas) for p in partitions),
        "reassigning": sum(p.is_reassigning for p in partitions),
    }


def topics_page(chrome: Chrome, image: MetadataImage, search: str, show_internal: bool) -> bytes:
    """Topics the viewer may Describe whose name contains `search` (case-insensitive)."""
    visible = [
        t for t in sorted(image.topics_by_id.values(), key=lambda t: t.name)
        if chrome.may_describe(ResourceType.TOPIC, t.name)
    ]
    needle = search.strip().lower()
    shown = [
        _topic_row(t) for t in visible
        if needle in t.name.lower() and (show_internal or needle or not is_internal_topic(t.name))
    ]
    empty = "no topic matches" if needle else ("no topic that you may Describe" if chrome.viewer else "no topics")
    return render(
        "topics.html", chrome, "Topics", "/topics", topics=shown, total=len(visible), search=search,
        show_internal=show_internal, empty=empty,
    )


def _partition_row(partition: PartitionImage, logs: TopicLogs | None) -> dict:
    """A partition's row; its log numbers from `logs` (console_data.logs.TopicLogs): "?" when its
    leader did not answer (the reason in the cell's title), "-" without a leader or without logs."""
    if partition.leader == NO_LEADER:
        state, state_class = "offline", "bad"
    elif len(partition.isr) < len(partition.replicas):
        state, state_class = "under-replicated", "warn"
    else:
        state, state_class = "ok", "ok"
    found = None if logs is None else logs.partitions.get(partition.partition)
    why = "" if logs is None or partition.leader == NO_LEADER else logs.unknown.get(partition.partition, "")
    preferred = partition.replicas[0] if partition.replicas else NO_LEADER

    def number(key: str) -> str:
        if found is None:
            return "?" if why else "-"
        return f"{getattr(found, key):,}"

    return {
        "partition": partition.partition, "leader": None if partition.leader == NO_LEADER else partition.leader,
        "preferred": preferred, "is_preferred": partition.leader == preferred,
        "leader_epoch": partition.leader_epoch, "replicas": ids_text(partition.replicas), "isr": ids_text(partition.isr),
        "state": state, "state_class": state_class, "log_start": number("log_start_offset"),
        "high_watermark": number("high_watermark"), "log_end": number("log_end_offset"), "size": number("size_bytes"),
        "unknown": why,
    }


def _progress_lines(partition: PartitionImage, logs: TopicLogs | None) -> list[str]:
    """Per adding replica: offsets and bytes it still has to copy from the leader, "in sync" once
    in the ISR, or why it is not known; without `logs` only whether it joined the ISR."""
    progress = {} if logs is None else {r.broker_id: r for r in logs.progress.get(partition.partition, ())}
    lines = []
    for replica in partition.adding_replicas:
        found = progress.get(replica)
        if replica in partition.isr:
            lines.append(f"{replica}: in sync")
        elif found is None:
            lines.append(f"{replica}: catching up")
        elif found.error:
            lines.append(f"{replica}: ? ({found.error})")
        else:
            lines.append(f"{replica}: {found.offsets_left:,} offsets, {found.bytes_left:,} bytes left")
    return lines


def _reassignment_row(partition: PartitionImage, logs: TopicLogs | None) -> dict:
    """An in-progress move: how many adding replicas joined the ISR, and per adding replica what
    it still has to copy (from `logs`, console_data.logs.TopicLogs)."""
    adding = partition.adding_replicas
    joined = sum(replica in partition.isr for replica in adding)
    target = [r for r in partition.replicas if r not in partition.removing_replicas]
    return {
        "partition": partition.partition, "started_by": "balancer" if partition.is_balancer_move else "user",
        "target": ids_text(target), "adding": ids_text(adding), "removing": ids_text(partition.removing_replicas),
        "isr": ids_text(partition.isr), "progress": f"{joined}/{len(adding)} new replicas in sync",
        "left": _progress_lines(partition, logs),
    }


def _config_rows(image: MetadataImage, topic: TopicImage) -> list[dict]:
    rows = []
    for key in TOPIC_KEYS:
        if key in topic.configs:
            value, source = topic.configs[key], "topic"
        elif key in image.cluster_configs:
            value, source = image.cluster_configs[key], "cluster"
        else:
            default = SCHEMA[key].default
            value, source = (str(default).lower() if isinstance(default, bool) else str(default)), "default"
        rows.append({"key": key, "value": value, "source": source, "doc": SCHEMA[key].doc})
    return rows


def topic_page(chrome: Chrome, image: MetadataImage, name: str, logs: TopicLogs | None = None,
               logs_note: str = "") -> tuple[int, bytes]:
    """The topic's page, or 404 when it does not exist or the viewer may not Describe it (the
    same answer for both, as the CLI gives: no way to probe for names). `logs`: the partitions'
    logs (console_data.logs.TopicLogs; None: not looked up, "-" shown), `logs_note` says why not."""
    topic = image.topic(name)
    if topic is None or not chrome.may_describe(ResourceType.TOPIC, name):
        return 404, result_page(chrome, "Topic not found", f"no topic {name} (or you may not Describe it)", False,
                                "/topics", "back to topics")
    reassignments = [_reassignment_row(p, logs) for p in topic.partitions if p.is_reassigning]
    return 200, render(
        "topic.html", chrome, f"Topic {name}", "/topics", name=name, topic_id=topic.topic_id.hex(),
        refresh_seconds=REASSIGNMENT_REFRESH_SECONDS if reassignments else 0,
        is_internal=is_internal_topic(name),
        partitions=[_partition_row(p, logs) for p in topic.partitions],
        reassignments=reassignments,
        configs=_config_rows(image, topic), logs_note=_logs_note(logs, logs_note),
    )


def _logs_note(logs: TopicLogs | None, note: str) -> str:
    """The line under the partitions: why numbers are missing ("?": which broker did not answer)."""
    if logs is None:
        return note
    reasons = sorted({why for partition, why in logs.unknown.items() if why != "no leader"})
    if not reasons:
        return note
    return f"? where the leader's log is not known (asked for {logs.elapsed_s:.1f} s): " + "; ".join(reasons)


def groups_page(chrome: Chrome, found, unavailable: str = "") -> bytes:
    """Every group of the cluster the viewer may Describe (`found`: console_data.groups.ClusterGroups),
    or one line saying why there is no list on this node."""
    if found is None:
        return render("groups.html", chrome, "Consumer groups", "/groups", unavailable=unavailable)
    empty = "no group that you may Describe" if chrome.viewer else "no consumer group"
    return render(
        "groups.html", chrome, "Consumer groups", "/groups", unavailable="", groups=found.groups,
        failures=found.failures, elapsed_s=found.elapsed_s, empty=empty,
    )


def group_page(chrome: Chrome, detail) -> bytes:
    """One group (`detail`: console_data.groups.GroupDetail): members, assignment, lag; actions."""
    topics = sorted({p.topic for p in detail.partitions} | {t for m in detail.members for t, _ in m.assignment})
    return render("group.html", chrome, f"Group {detail.group}", "/groups", g=detail, topics=topics)


SEARCH_FIELDS = (("all", "key, value and headers"), ("key", "key"), ("value", "value"), ("headers", "headers"))


def _utc(timestamp_ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp_ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{timestamp_ms % 1000:03d}"


def messages_page(chrome: Chrome, topic: TopicImage, form: Mapping[str, object], result, error: str,
                  older: str) -> bytes:
    """The message browser of `topic`: the query form (`form`: its current values), then the
    page `result` (console_data.messages.BrowseResult) with what the scan cost, or `error`."""
    rows = [] if result is None else [
        {"partition": r.partition, "offset": r.offset, "time": _utc(r.timestamp_ms), "timestamp_type": r.timestamp_type,
         "key": r.key, "value": r.value, "headers": r.headers}
        for r in result.rows
    ]
    stopped = {"limit": "the row limit", "start_of_log": "the start of the log", "records": "the record budget",
               "bytes": "the byte budget", "seconds": "the time budget"}
    return render(
        "messages.html", chrome, f"Messages of {topic.name}", "/topics", topic=topic.name,
        partitions=[p.partition for p in topic.partitions], result=result, rows=rows, error=error, older=older,
        stopped_by="" if result is None else stopped.get(result.stopped_by, result.stopped_by),
        search_fields=SEARCH_FIELDS, **form,
    )


_SERIES_TITLES = {"bytes_in_per_s": "bytes in", "records_in_per_s": "records in", "bytes_out_per_s": "bytes out",
                  "lag_records": "lag", "lag_seconds": "lag time"}


def charts_page(chrome: Chrome, history, search: str, unavailable: str = "", charts=None) -> bytes:
    """Throughput per topic and lag per (group, topic), cluster-wide: `charts`
    (console_data.cluster_charts.ClusterCharts, every broker's series merged) sampled as `history`
    (this node's History: its interval and window) says, as inline SVG, for the topics and groups
    the viewer may Describe whose name contains `search`; the brokers missing from the merge are
    named."""
    if history is None or charts is None:
        return render("charts.html", chrome, "Charts", "/charts", unavailable=unavailable)
    needle = search.strip().lower()
    throughput, lag = [], []
    for key in sorted(charts.series):
        kind, labels = key[0], key[1:]
        if kind in ("lag_records", "lag_seconds"):
            group, topic = labels
            if not (chrome.may_describe(ResourceType.GROUP, group) and chrome.may_describe(ResourceType.TOPIC, topic)):
                continue
            if needle and needle not in group.lower() and needle not in topic.lower():
                continue
            lag.append(render_svg(charts.series[key], title=f"{group} on {topic}: {_SERIES_TITLES[kind]}"))
        elif (len(labels) == 1 and chrome.may_describe(ResourceType.TOPIC, labels[0]) and needle in labels[0].lower()
              and (needle or not is_internal_topic(labels[0]))):      # internal topics when searched for
            throughput.append(render_svg(charts.series[key], title=f"{labels[0]}: {_SERIES_TITLES.get(kind, kind)}"))
    return render(
        "charts.html", chrome, "Charts", "/charts", unavailable="", throughput=throughput, lag=lag, search=search,
        refresh_seconds=CHARTS_REFRESH_SECONDS, nodes=charts.nodes, missing=charts.missing,
        hours=f"{history.points * history.interval_s / 3600:g}", interval_s=history.interval_s,
    )


def confirm_page(chrome: Chrome, question: str, action: str, fields: Sequence[tuple[str, str]], back: str,
                 button: str, details: Sequence[str] = (), dangerous: bool = False) -> bytes:
    """The confirmation step of an action: the same fields again, with `confirmed=yes`."""
    return render(
        "confirm.html", chrome, "Confirm", back, question=question, action=action, fields=fields,
        back=back, button=button, details=details, dangerous=dangerous,
    )


def login_page(csrf_token: str, message: str = "", certificate_principal: str | None = None) -> bytes:
    """The login page: user and password, posted with the login CSRF token; no navigation (every
    page needs a session).

    Args:
        message: one line above the form (why the last attempt failed), or "".
        certificate_principal: the principal of the browser's verified client certificate, offered
            as a way in without a password.
    """
    return render("login.html", Chrome(None, csrf_token), "Log in", "/login", nav=(), message=message,
                  certificate_principal=certificate_principal)


def result_page(chrome: Chrome, title: str, message: str, ok: bool, back: str, back_label: str,
                details: Sequence[str] = ()) -> bytes:
    return render("result.html", chrome, title, back, message=message, ok=ok, back=back,
                  back_label=back_label, details=details)

