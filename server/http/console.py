"""What every console page shares: the `Viewer` (the logged-in principal a page is rendered for),
the base style, the navigation links, and the labels of broker ids and a broker's state. The pages
themselves (the overview at `/` included, and the login page) are Jinja2 templates rendered by
console_pages.py; console_routes.py routes them and runs the actions.

With security on, every page is rendered for a Viewer and shows only what the CLI would show that
principal (Describe rights); a refused cluster panel says so in one line and is audited once per
session (`Viewer.refused`, called by `may_describe_cluster`).

Imports: standard library, freshet.metadata.security.
Thread-safety: pure functions (a Viewer's callbacks are the caller's and must be thread-safe).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from freshet.metadata.security import CLUSTER_NAME, Operation, ResourceType

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


def ids_text(ids: Iterable[int]) -> str:
    """Broker ids as "1,2,3", "-" for none."""
    return ",".join(str(node_id) for node_id in ids) or "-"


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


#: The console's pages (console_pages.py renders them), linked from every page.
NAV_LINKS = (("/", "Overview"), ("/brokers", "Brokers"), ("/topics", "Topics"), ("/groups", "Consumer groups"),
             ("/charts", "Charts"))
