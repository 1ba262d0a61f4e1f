"""Issue 17's acceptance for observability, on real `julia api` and `julia
worker` processes against the stand-ins: /metrics scraped before and after N
doctor messages moves by exactly N (webhooks, replies sent, LLM calls, the
latency histogram's count), and `julia trace` shows every step of one
message in order — or says clearly that an id is unknown."""

from __future__ import annotations

import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests import payloads
from tests.acceptance.conftest import run_julia
from tests.conftest import WEBHOOK_SECRET, settled, wait_for

AUTH = {"x-webhook-secret": WEBHOOK_SECRET}
N = 3


def scrape(api_url: str) -> dict[tuple[str, frozenset], float]:
    response = httpx.get(f"{api_url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def total(values: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels` (0 when absent)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in values.items() if n == name and wanted <= ls)


def sent_replies(db) -> int:
    return db.execute("SELECT count(*) AS n FROM outbox WHERE kind = 'reply' AND state = 'sent'").fetchone()["n"]


def test_metrics_move_by_exactly_the_messages_sent(api_url, spawn, test_env, db, evolution, claude):
    spawn(["worker"], test_env)
    before = scrape(api_url)
    assert total(before, "julia_database_up") == 1
    for n in range(N):  # N doctors, one message each: N replies
        body = payloads.upsert(text=f"Oi, tem plantão {n}?", phone=f"55119100000{n:02d}", lid=f"88800000{n:02d}@lid")
        assert httpx.post(f"{api_url}/webhooks/evolution", json=body, headers=AUTH, timeout=5).status_code == 200
    wait_for(lambda: sent_replies(db) == N and settled(db), timeout=60)
    after = scrape(api_url)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("julia_webhooks_total", source="evolution", status="2xx", outcome="queued") == N
    assert moved("julia_webhooks_total", status="4xx") == 0
    assert moved("julia_inbound_queued_total") == N
    assert moved("julia_sends_total", kind="reply", outcome="sent") == N
    assert len(evolution.sent_texts()) == N
    # Every model call: as many as the Claude stand-in answered, tokens as it counted them.
    calls = claude.calls()
    assert moved("julia_llm_calls_total", model=test_env["LLM_MODEL"], outcome="ok") == len(calls) == N
    input_tokens = sum(max(1, len(json.dumps(c, ensure_ascii=False)) // 4) for c in calls)
    assert moved("julia_llm_tokens_total", kind="input") == input_tokens
    # The histogram counted N replies, and its sum is the latencies SQL can see.
    assert moved("julia_reply_latency_seconds_count") == N
    assert moved("julia_reply_latency_seconds_bucket", le="+Inf") == N
    latencies = db.execute(
        "SELECT extract(epoch FROM o.sent_at - i.created_at)::float8 AS s FROM outbox AS o "
        "JOIN interacoes AS i ON i.id = o.reply_to_id WHERE o.kind = 'reply'"
    ).fetchall()
    assert abs(moved("julia_reply_latency_seconds_sum") - sum(r["s"] for r in latencies)) < 1e-3
    bounds = [le for (name, labels) in after if name == "julia_reply_latency_seconds_bucket" for _, le in labels]
    assert len(bounds) == 13
    for le in bounds:  # each cumulative bucket holds the replies at most that slow
        assert moved("julia_reply_latency_seconds_bucket", le=le) == sum(r["s"] <= float(le) for r in latencies), le
    assert total(after, "julia_inbound_queue_depth") == 0
    assert total(after, "julia_jobs", queue="replies", status="todo") == 0


def test_trace_shows_every_step_of_one_message_in_order(api_url, spawn, test_env, db, evolution):
    spawn(["worker"], test_env)
    body = payloads.upsert(text="Oi, vocês têm plantão de pediatria?")
    message_id = body["data"]["key"]["id"]
    assert httpx.post(f"{api_url}/webhooks/evolution", json=body, headers=AUTH, timeout=5).status_code == 200
    wait_for(lambda: sent_replies(db) == 1 and settled(db), timeout=60)
    sent = db.execute("SELECT evolution_message_id FROM outbox WHERE kind = 'reply'").fetchone()
    ack = {
        "event": "messages.update",
        "instance": "julia-test",
        "data": {
            "keyId": sent["evolution_message_id"],
            "remoteJid": f"{payloads.PHONE}@s.whatsapp.net",
            "status": "DELIVERY_ACK",
        },
    }
    assert httpx.post(f"{api_url}/webhooks/evolution", json=ack, headers=AUTH, timeout=5).json()["matched"] == 1

    result = run_julia(["trace", message_id, "--json"], test_env)
    assert result.returncode == 0, result.stderr
    steps = json.loads(result.stdout)["steps"]
    names = [s["step"] for s in steps]
    expected = [
        "webhook_queued",
        "interacao_stored",
        "reply_job_deferred",
        "reply_job_started",
        "llm_call",
        "outbox_queued",
        "send_job_deferred",
        "send_job_started",
        "outbox_claimed",
        "outbox_sent",
        "send_job_succeeded",
        "delivery_status",
    ]
    # Every step is there, in this order (the debounce adds reply_job_scheduled early on) ...
    assert [n for n in names if n in expected] == expected, names
    # ... and the reply job finishes after writing the outbox (its send may start before or after).
    assert names.count("reply_job_succeeded") == 1, names
    assert names.index("send_job_deferred") < names.index("reply_job_succeeded") < names.index("delivery_status")
    times = [s["at"] for s in steps]
    assert times == sorted(times)
    by_step = {s["step"]: s["detail"] for s in steps}
    assert by_step["outbox_sent"]["evolution_message_id"] == sent["evolution_message_id"]
    assert by_step["outbox_claimed"]["number"] == payloads.PHONE
    assert by_step["outbox_claimed"]["instance"] == "julia-test"
    assert by_step["llm_call"]["model"] == test_env["LLM_MODEL"]
    assert by_step["llm_call"]["outcome"] == "ok"
    assert by_step["delivery_status"]["status"] == "DELIVERY_ACK"
    assert by_step["reply_job_started"]["job_id"] == by_step["llm_call"]["job_id"]

    # The same trace from the interacao id, and from Julia's answer; the table is readable.
    interacao = by_step["interacao_stored"]["interacao_id"]
    assert json.loads(run_julia(["trace", str(interacao), "--json"], test_env).stdout)["steps"] == steps
    table = run_julia(["trace", sent["evolution_message_id"]], test_env)
    assert table.returncode == 0, table.stderr
    assert "enviado ao WhatsApp / sent" in table.stdout
    assert "hora (São Paulo)" in table.stdout
    assert f"number={payloads.PHONE} instance=julia-test" in table.stdout


def test_trace_of_an_unknown_id_says_so(test_env):
    result = run_julia(["trace", "3ANOSUCHMESSAGE"], test_env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "julia: error: mensagem desconhecida / unknown message: 3ANOSUCHMESSAGE "
        "(give an interacao id or an Evolution message id)"
    )
