"""The read-only web console at `/` on every node: one HTML page rendered from the node's state.

Owns the page's content and layout only: brokers, the active controller, the metadata quorum,
topics with per-partition leader / replicas / ISR (offline and under-replicated partitions
flagged), and the consumer groups this node coordinates with their lag. It is server-rendered
HTML with no script and no external asset (a console must work on an air-gapped cluster), and it
refreshes itself every few seconds. Every value is HTML-escaped.

Imports: standard library, freshet.metadata (image, controller.is_internal_topic). Thread-safety: pure functions.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence

from freshet.metadata.controller import is_internal_topic
from freshet.metadata.image import NO_LEADER, MetadataImage

REFRESH_SECONDS = 5

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse}th,td{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b00020;font-weight:600}.warn{color:#9a6700}.ok{color:#1a7f37}.muted{color:#777}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _ids(ids: Iterable[int]) -> str:
    return ",".join(str(node_id) for node_id in ids) or "-"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(header)}</th>" for header in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _brokers(image: MetadataImage) -> str:
    rows = []
    for broker in sorted(image.brokers.values(), key=lambda b: b.node_id):
        if broker.is_fenced:
            state = '<span class="bad">fenced</span>'
        elif broker.in_controlled_shutdown:
            state = '<span class="warn">shutting down</span>'
        else:
            state = '<span class="ok">active</span>'
        controller = " (active controller)" if broker.node_id == image.controller_id else ""
        rows.append([_e(broker.node_id) + _e(controller), _e(f"{broker.host}:{broker.port}"), _e(broker.rack or "-"), state])
    return _table(["id", "address", "rack", "state"], rows, "no broker registered")


def _quorum(status: Mapping) -> str:
    quorum = status.get("quorum")
    controller = status.get("controller_id")
    lines = [f"active controller: <b>{_e(controller if controller not in (None, -1) else 'none')}</b>"]
    if quorum:
        lines.append(f"Raft leader: {_e(quorum.get('leader'))}, term {_e(quorum.get('term'))}")
    else:
        lines.append('<span class="muted">this node is not a voter</span>')
    return "<p>" + " &middot; ".join(lines) + "</p>"


def _topics(image: MetadataImage) -> str:
    sections = []
    topics = sorted(image.topics_by_id.values(), key=lambda t: t.name)
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
                _e(_ids(partition.replicas)), _e(_ids(partition.isr)), state,
            ])
        internal = ' <span class="muted">(internal)</span>' if is_internal_topic(topic.name) else ""
        sections.append(
            f"<h3>{_e(topic.name)}{internal} <span class=\"muted\">{len(topic.partitions)} partitions</span></h3>"
            + _table(["partition", "leader", "epoch", "replicas", "isr", "state"], rows, "no partitions")
        )
    return "".join(sections) or '<p class="muted">no topics</p>'


def _groups(groups: Sequence[Mapping] | None) -> str:
    if groups is None:
        return '<p class="muted">no group coordinator on this node</p>'
    rows = []
    for group in groups:
        lag = group.get("lag")
        rows.append([
            _e(group.get("group")), _e(group.get("state")), _e(group.get("generation")),
            _e(group.get("members")), f'<span class="num">{_e("-" if lag is None else lag)}</span>',
        ])
    return _table(["group", "state", "generation", "members", "lag"], rows, "no group coordinated by this node")


def render(image: MetadataImage, status: Mapping, groups: Sequence[Mapping] | None) -> bytes:
    """The console page (UTF-8 HTML) for this node's image, /status and coordinated groups."""
    offline = sum(p.leader == NO_LEADER for t in image.topics_by_id.values() for p in t.partitions)
    short = sum(len(p.isr) < len(p.replicas) for t in image.topics_by_id.values() for p in t.partitions)
    partitions = sum(len(t.partitions) for t in image.topics_by_id.values())
    if status.get("ready"):
        readiness = '<span class="ok">ready</span>'
    else:
        readiness = '<span class="bad">not ready</span>: ' + _e(status.get("readiness", ""))
    offline_class, short_class = ("bad" if offline else "ok"), ("warn" if short else "ok")
    summary = (
        f"node {_e(status.get('node_id'))} ({_e(', '.join(status.get('roles', [])))}) &middot; {readiness}"
        f" &middot; cluster {_e(image.cluster_id or '-')} &middot; metadata offset {_e(image.offset)}<br>"
        f"{len(image.topics_by_id)} topics, {partitions} partitions, "
        f'<span class="{offline_class}">{offline} offline</span>, '
        f'<span class="{short_class}">{short} under-replicated</span>'
    )
    page = (
        "<!doctype html><html><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\"><title>Freshet</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Freshet</h1><p>{summary}</p>"
        f"<h2>Controller and quorum</h2>{_quorum(status)}"
        f"<h2>Brokers</h2>{_brokers(image)}"
        f"<h2>Consumer groups</h2>{_groups(groups)}"
        f"<h2>Topics</h2>{_topics(image)}"
        "<p class=\"muted\">read-only; also /status (JSON), /metrics, /healthz, /readyz</p>"
        "</body></html>"
    )
    return page.encode()
