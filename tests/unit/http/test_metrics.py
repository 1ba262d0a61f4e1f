"""The pure parts of /metrics: database rows become Prometheus families
(counters, gauges, one cumulative histogram) and webhook answers become outcomes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from app.http.metrics import _Snapshot, database_families, webhook_outcome


def render(rows):
    registry = CollectorRegistry()
    registry.register(_Snapshot(database_families(rows)))
    return generate_latest(registry).decode()


def test_rows_become_counters_gauges_and_a_histogram():
    text = render(
        [
            {"metric": "julia_sends_total", "labels": {"kind": "reply", "outcome": "sent"}, "value": 3.0},
            {"metric": "julia_paused", "labels": {}, "value": 1.0},
            {"metric": "julia_reply_latency_seconds_bucket", "labels": {"le": "5"}, "value": 2.0},
            {"metric": "julia_reply_latency_seconds_bucket", "labels": {"le": "+Inf"}, "value": 3.0},
            {"metric": "julia_reply_latency_seconds_sum", "labels": {}, "value": 12.5},
            {"metric": "julia_reply_latency_seconds_count", "labels": {}, "value": 3.0},
            {"metric": "julia_something_new", "labels": {}, "value": 7.0},
        ]
    )
    assert "# TYPE julia_sends_total counter" in text
    assert 'julia_sends_total{kind="reply",outcome="sent"} 3.0' in text
    assert "# TYPE julia_paused gauge" in text
    assert "# TYPE julia_reply_latency_seconds histogram" in text
    assert 'julia_reply_latency_seconds_bucket{le="5"} 2.0' in text
    assert "julia_reply_latency_seconds_count 3.0" in text  # the +Inf bucket
    assert "julia_reply_latency_seconds_sum 12.5" in text
    assert "julia_something_new 7.0" in text  # a newer database's series is still exported


def test_webhook_outcomes():
    assert webhook_outcome(200, b'{"status":"queued","msg_id":1}') == "queued"
    assert webhook_outcome(200, b'{"status":"ignored","event":"x"}') == "ignored"
    assert webhook_outcome(401, b"") == "unauthorized"
    assert webhook_outcome(503, b"") == "unavailable"
    assert webhook_outcome(418, b"") == "http_418"
