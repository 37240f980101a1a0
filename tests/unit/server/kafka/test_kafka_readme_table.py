"""The README's table of supported Kafka APIs is what ApiVersions advertises, no more, no less.

Goal: a user reading "Supported Kafka APIs" learns exactly what the brokers implement. Method: build
the front end's handler table (the one KafkaApis answers ApiVersions from) over fakes, and compare
it with the table's rows.
"""

from __future__ import annotations

import pathlib
import re
import types

from freshet.server.config import HostPort
from freshet.server.kafka.front_end import KafkaFrontEnd
from freshet.server.metrics import BrokerMetrics
from prometheus_client import CollectorRegistry

README = pathlib.Path(__file__).resolve().parents[4] / "README.md"


SASL_APIS = {17, 36}


def advertised(authenticator=None) -> set[tuple[int, str, int, int]]:
    config = types.SimpleNamespace(
        kafka_listen=HostPort("127.0.0.1", 0), node_id=1, request_timeout_ms=1000, logs_dir="/tmp", broker_configs={}
    )
    data_plane = types.SimpleNamespace(metrics=BrokerMetrics(CollectorRegistry()))
    groups = types.SimpleNamespace(locate=None, coordinator=None)
    front_end = KafkaFrontEnd(
        config, types.SimpleNamespace(image=None), data_plane, None, lambda: None, groups, authenticator=authenticator
    )
    return {(handler.api_key, handler.name, *handler.versions) for handler in front_end.apis.handlers()}


def readme_rows() -> set[tuple[int, str, int, int]]:
    text = README.read_text()
    table = text[text.index("### Supported Kafka APIs") :].split("\n\n")[2]
    rows = set()
    for key, name, versions in re.findall(r"^\| (\d+) \| (\w+) \| ([\d–]+) \|$", table, re.M):
        low, _, high = versions.partition("–")
        rows.add((int(key), name, int(low), int(high or low)))
    return rows


def test_the_readme_lists_exactly_the_advertised_apis_and_versions():
    """With SASL_SSL the node advertises every row; without SASL every row but the SASL APIs."""
    from freshet.server.security.authentication import Authenticator

    rows = readme_rows()
    assert len(rows) > 10
    sasl = Authenticator("SASL_SSL", ("SCRAM-SHA-512",), lambda: None, CollectorRegistry())
    assert rows == advertised(sasl)
    assert {row for row in rows if row[0] not in SASL_APIS} == advertised()
    ssl_only = Authenticator("SSL", ("SCRAM-SHA-512",), lambda: None, CollectorRegistry())
    assert advertised(ssl_only) == advertised()
