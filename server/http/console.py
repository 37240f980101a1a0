"""The console's overview at `/` on every node (the other pages: console_pages.py, routed by
console_routes.py), the login page, and what every page shares: the Viewer, the style, the
navigation links, a broker's state label.

The overview owns its content and layout only: brokers, the active controller, the metadata quorum,
topics with per-partition leader / replicas / ISR (offline and under-replicated partitions
flagged), and the consumer groups this node coordinates with their lag. It is server-rendered
HTML with no script and no external asset (a console must work on an air-gapped cluster), and it
refreshes itself every few seconds. Every value is HTML-escaped.

With security on, the page is rendered for a `Viewer` (a logged-in principal) and shows only what
the CLI would show that principal: topics it may Describe, groups it may Describe, and the cluster
panels (brokers, controller, quorum, the cluster summary) only with Describe on the cluster; a
refused panel says so in one line. The overview has no actions (no form but logout); the
actions are on the topic and group pages, decided by the admin handlers (console_routes.py).

Imports: standard library, freshet.metadata (image, security, controller.is_internal_topic).
Thread-safety: pure functions (a Viewer's callbacks are the caller's and must be thread-safe).
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Iterable, Mapping, Sequence

from freshet.metadata.controller import broker_loads, is_internal_topic
from freshet.metadata.image import NO_LEADER, MetadataImage, TopicImage
from freshet.metadata.security import CLUSTER_NAME, Operation, ResourceType

REFRESH_SECONDS = 5

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse}th,td{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b00020;font-weight:600}.warn{color:#9a6700}.ok{color:#1a7f37}.muted{color:#777}
.denied{color:#777;font-style:italic}form.inline{display:inline;margin-left:1em}
label{display:block;margin:.5em 0}input{font:inherit;padding:.2em}
"""


@dataclasses.dataclass(frozen=True)
class Viewer:
    """The logged-in principal a page is rendered for (security on). Thread-safe (immutable).

    Attributes:
        principal: "User:alice", shown at the top with the logout button.
        csrf_token: the session's CSRF token, embedded in the logout form.
        allows: whether the principal may (operation, resource type, resource name).
        refused: called once per refused cluster panel (the caller audits it).
    """

    principal: str
    csrf_token: str
    allows: Callable[[Operation, ResourceType, str], bool]
    refused: Callable[[Operation, ResourceType, str], None] = lambda operation, resource_type, name: None

    def may_describe_cluster(self) -> bool:
        if self.allows(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
            return True
        self.refused(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME)
        return False

    def denial(self, what: str) -> str:
        """One line saying that `what` needs Describe on the cluster, which the principal lacks."""
        return (
            f'<p class="denied">{_e(self.principal)} is not authorized to Describe the cluster: '
            f"{_e(what)} not shown.</p>"
        )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def ids_text(ids: Iterable[int]) -> str:
    """Broker ids as "1,2,3", "-" for none."""
    return ",".join(str(node_id) for node_id in ids) or "-"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(header)}</th>" for header in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def broker_state(broker, replicas_hosted: int) -> tuple[str, str]:
    """A broker's state for the console and its CSS class: decommissioned (no replica left),
    decommissioning, fenced, shutting down or active."""
    if broker.is_decommissioning:
        return ("decommissioned", "muted") if replicas_hosted == 0 else ("decommissioning", "warn")
    if broker.is_fenced:
        return "fenced", "bad"
    if broker.in_controlled_shutdown:
        return "shutting down", "warn"
    return "active", "ok"


def _brokers(image: MetadataImage) -> str:
    replicas, leaders = broker_loads(image)
    rows = []
    for broker in sorted(image.brokers.values(), key=lambda b: b.node_id):
        label, css_class = broker_state(broker, replicas[broker.node_id])
        state = f'<span class="{css_class}">{label}</span>'
        controller = " (active controller)" if broker.node_id == image.controller_id else ""
        rows.append([
            _e(broker.node_id) + _e(controller), _e(f"{broker.host}:{broker.port}"), _e(broker.rack or "-"), state,
            f'<span class="num">{replicas[broker.node_id]}</span>', f'<span class="num">{leaders[broker.node_id]}</span>',
        ])
    return _table(["id", "address", "rack", "state", "replicas", "leaders"], rows, "no broker registered")


def _reassignments(image: MetadataImage) -> str:
    """Reassignments in progress: who started them (the balancer or a user) and what moves."""
    rows = [
        [
            _e(f"{topic.name}-{partition.partition}"),
            _e("balancer" if partition.is_balancer_move else "user"),
            _e(ids_text(partition.adding_replicas)), _e(ids_text(partition.removing_replicas)), _e(ids_text(partition.isr)),
        ]
        for topic in sorted(image.topics_by_id.values(), key=lambda t: t.name)
        for partition in topic.partitions
        if partition.is_reassigning
    ]
    return _table(["partition", "started by", "adding", "removing", "isr"], rows, "no reassignment in progress")


def _quorum(status: Mapping) -> str:
    quorum = status.get("quorum")
    controller = status.get("controller_id")
    lines = [f"active controller: <b>{_e(controller if controller not in (None, -1) else 'none')}</b>"]
    if quorum:
        lines.append(f"Raft leader: {_e(quorum.get('leader'))}, term {_e(quorum.get('term'))}")
    else:
        lines.append('<span class="muted">this node is not a voter</span>')
    return "<p>" + " &middot; ".join(lines) + "</p>"


def _topics(topics: Sequence[TopicImage], empty: str) -> str:
    sections = []
    for topic in topics:
        rows = []
        for partition in topic.partitions:
            if partition.leader == NO_LEADER:
                leader, state = '<span class="bad">none</span>', '<span class="bad">offline</span>'
            else:
                leader = _e(partition.leader)
                short = len(partition.isr) < len(partition.replicas)
                state = '<span class="warn">under-replicated</span>' if short else '<span class="ok">ok</span>'
            rows.append([
                _e(partition.partition), leader, _e(partition.leader_epoch),
                _e(ids_text(partition.replicas)), _e(ids_text(partition.isr)), state,
            ])
        internal = ' <span class="muted">(internal)</span>' if is_internal_topic(topic.name) else ""
        sections.append(
            f"<h3>{_e(topic.name)}{internal} <span class=\"muted\">{len(topic.partitions)} partitions</span></h3>"
            + _table(["partition", "leader", "epoch", "replicas", "isr", "state"], rows, "no partitions")
        )
    return "".join(sections) or f'<p class="muted">{_e(empty)}</p>'


def _groups(groups: Sequence[Mapping] | None, empty: str = "no group coordinated by this node") -> str:
    if groups is None:
        return '<p class="muted">no group coordinator on this node</p>'
    rows = []
    for group in groups:
        lag = group.get("lag")
        rows.append([
            _e(group.get("group")), _e(group.get("state")), _e(group.get("generation")),
            _e(group.get("members")), f'<span class="num">{_e("-" if lag is None else lag)}</span>',
        ])
    return _table(["group", "state", "generation", "members", "lag"], rows, empty) + _group_lag_times(groups)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"


def _group_lag_times(groups: Sequence[Mapping]) -> str:
    """Per group: a warning when over its lag.alert.seconds, and LAG-TIME per partition."""
    sections = []
    for group in groups:
        partitions = group.get("lag_partitions") or []
        if not partitions:
            continue
        name, threshold = group.get("group"), group.get("lag_alert_seconds") or 0
        warning = ""
        if group.get("is_lag_alerting"):
            late = ", ".join(t["topic"] for t in group.get("lag_topics", ()) if t["is_alerting"])
            warning = (
                f'<p class="bad lag-alert">warning: group {_e(name)} is more than {_e(f"{threshold:g}")} s behind '
                f"(lag.alert.seconds) on {_e(late)}</p>"
            )
        rows = [
            [_e(p["topic"]), _e(p["partition"]), f'<span class="num">{_e(p["committed_offset"])}</span>',
             f'<span class="num">{_e("-" if p["lag_records"] is None else p["lag_records"])}</span>',
             f'<span class="num">{_e(_seconds(p["lag_seconds"]))}</span>']
            for p in partitions
        ]
        alert = f" alert above {threshold:g} s" if threshold else ""
        sections.append(
            f'<h3>{_e(name)} <span class="muted">lag in time{_e(alert)}</span></h3>{warning}'
            + _table(["topic", "partition", "committed", "lag", "LAG-TIME"], rows, "no committed offsets")
        )
    return "".join(sections)


def _disk(disk: Mapping | None) -> str:
    """This node's log directory (/status "disk"): free space and whether produce is refused."""
    if not disk or disk.get("total_bytes", -1) < 0:
        return ""
    free, total = disk["free_bytes"] / 2**30, disk["total_bytes"] / 2**30
    if disk["state"] == "full":
        state = (
            f'<span class="bad" id="disk-state">disk full</span>: produce refused until '
            f"{disk['high_water_bytes'] / 2**30:.2f} GiB are free"
        )
    else:
        state = '<span class="ok" id="disk-state">disk ok</span>'
    return f"<br>log directory {_e(disk['directory'])}: {state}, {free:.2f} GiB free of {total:.2f} GiB"


#: The console's pages (console_pages.py renders all but this one), linked from every page.
NAV_LINKS = (("/", "Overview"), ("/brokers", "Brokers"), ("/topics", "Topics"), ("/groups", "Consumer groups"),
             ("/charts", "Charts"))


def _nav() -> str:
    return '<nav class="pages">' + " &middot; ".join(f'<a href="{href}">{label}</a>' for href, label in NAV_LINKS) + "</nav>"


def _header(viewer: Viewer | None) -> str:
    if viewer is None:
        return "<h1>Freshet</h1>" + _nav()
    return (
        f'<h1>Freshet</h1>{_nav()}<div>signed in as <b id="principal">{_e(viewer.principal)}</b>'
        '<form class="inline" method="post" action="/logout">'
        f'<input type="hidden" name="csrf" value="{_e(viewer.csrf_token)}">'
        '<button type="submit" id="logout">Log out</button></form></div>'
    )


def render(
    image: MetadataImage, status: Mapping, groups: Sequence[Mapping] | None, viewer: Viewer | None = None
) -> bytes:
    """The console page (UTF-8 HTML) for this node's image, /status and coordinated groups.

    Args:
        viewer: the logged-in principal (security on): the page then shows only the topics and
            groups it may Describe and the cluster panels only with Describe on the cluster.
            None (security off): everything.
    """
    topics = sorted(image.topics_by_id.values(), key=lambda t: t.name)
    topics_empty, groups_empty = "no topics", "no group coordinated by this node"
    may_describe_cluster = True
    if viewer is not None:
        topics = [t for t in topics if viewer.allows(Operation.DESCRIBE, ResourceType.TOPIC, t.name)]
        if groups is not None:
            groups = [g for g in groups if viewer.allows(Operation.DESCRIBE, ResourceType.GROUP, str(g.get("group")))]
        topics_empty = "no topic that you may Describe"
        groups_empty = "no group that you may Describe is coordinated by this node"
        may_describe_cluster = viewer.may_describe_cluster()
    offline = sum(p.leader == NO_LEADER for t in topics for p in t.partitions)
    short = sum(len(p.isr) < len(p.replicas) for t in topics for p in t.partitions)
    partitions = sum(len(t.partitions) for t in topics)
    if status.get("ready"):
        readiness = '<span class="ok">ready</span>'
    else:
        readiness = '<span class="bad">not ready</span>: ' + _e(status.get("readiness", ""))
    offline_class, short_class = ("bad" if offline else "ok"), ("warn" if short else "ok")
    summary = (
        f"node {_e(status.get('node_id'))} ({_e(', '.join(status.get('roles', [])))}) &middot; {readiness}"
        f" &middot; cluster {_e(image.cluster_id or '-')} &middot; metadata offset {_e(image.offset)}<br>"
        f"{len(topics)} topics, {partitions} partitions, "
        f'<span class="{offline_class}">{offline} offline</span>, '
        f'<span class="{short_class}">{short} under-replicated</span>'
        f"{_disk(status.get('disk'))}"
    )
    if may_describe_cluster:
        cluster = (
            f"<h2>Controller and quorum</h2>{_quorum(status)}"
            f"<h2>Brokers</h2>{_brokers(image)}"
            f"<h2>Reassignments</h2>{_reassignments(image)}"
        )
    else:
        assert viewer is not None
        cluster = (
            f"<h2>Controller and quorum</h2>{viewer.denial('the controller and the quorum are')}"
            f"<h2>Brokers</h2>{viewer.denial('brokers are')}"
        )
    page = (
        "<!doctype html><html><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\"><title>Freshet</title>"
        f"<style>{STYLE}</style></head><body>"
        f"{_header(viewer)}<p>{summary}</p>"
        f"{cluster}"
        f"<h2>Consumer groups</h2>{_groups(groups, groups_empty)}"
        f"<h2>Topics</h2>{_topics(topics, topics_empty)}"
        "<p class=\"muted\">actions are on the topic and group pages; also /status (JSON), /metrics, /healthz, /readyz</p>"
        "</body></html>"
    )
    return page.encode()


def render_login(csrf_token: str, message: str = "", certificate_principal: str | None = None) -> bytes:
    """The login page (UTF-8 HTML): user and password, posted with the login CSRF token.

    Args:
        message: one line above the form (why the last attempt failed), or "".
        certificate_principal: the principal of the browser's verified client certificate, offered
            as a way in without a password.
    """
    notice = f'<p class="bad" id="message">{_e(message)}</p>' if message else ""
    certificate = ""
    if certificate_principal is not None:
        certificate = (
            f'<p>Your client certificate identifies you as <b>{_e(certificate_principal)}</b>: '
            '<a href="/">continue without a password</a>.</p>'
        )
    page = (
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Freshet: log in</title>"
        f"<style>{STYLE}</style></head><body><h1>Freshet</h1>{notice}{certificate}"
        '<form method="post" action="/login">'
        '<label>User <input name="user" id="user" autocomplete="username" required autofocus></label>'
        '<label>Password <input type="password" name="password" id="password" autocomplete="current-password" required></label>'
        f'<input type="hidden" name="csrf" value="{_e(csrf_token)}">'
        '<button type="submit" id="login">Log in</button></form>'
        "</body></html>"
    )
    return page.encode()
