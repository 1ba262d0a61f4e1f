"""Scripted pt-BR dialogues (tests/conversations/*.yaml): doctor lines, the
model's scripted tool calls and answers, and the effects to assert — which
vagas were offered, what was reserved, handoff, opt-out. They run the real
path (webhook, worker, SQL tools) against the Claude stand-in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import payloads
from tests.conftest import WEBHOOK_SECRET, settled, wait_for
from tests.factories import Domain

DIALOGUES = sorted((Path(__file__).parent.parent / "conversations").glob("*.yaml"))


def _setup(db, spec: dict[str, Any]) -> dict[str, int]:
    d = Domain(db)
    ids: dict[str, int] = {}
    for e in spec.get("especialidades", []):
        ids[e["nome"]] = d.especialidade(e["nome"], *e.get("aliases", []))
    for h in spec.get("hospitais", []):
        ids[h["nome"]] = d.hospital(h["nome"], cidade=h["cidade"], regiao=h["regiao"])
    refs: dict[str, int] = {}
    for v in spec.get("vagas", []):
        refs[v["ref"]] = d.vaga(
            hospital_id=ids[v["hospital"]],
            especialidade_id=ids[v["especialidade"]],
            dias=v.get("dias", 3),
            valor=v.get("valor", 1500),
            periodo=v.get("periodo", "Noturno 12h"),
        )
    return refs


def _resolve(value: Any, refs: dict[str, int]) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        return refs[value[1:]]
    if isinstance(value, dict):
        return {k: _resolve(v, refs) for k, v in value.items()}
    return value


def _offered(calls: list[dict]) -> list[dict]:
    """Vagas returned by buscar_vagas in this turn's tool results."""
    vagas: list[dict] = []
    for call in calls:
        last = call["messages"][-1]
        if not isinstance(last["content"], list):
            continue
        for block in last["content"]:
            if block.get("type") == "tool_result" and not block.get("is_error"):
                result = json.loads(block["content"])
                if isinstance(result, dict) and "vagas" in result:
                    vagas.extend(result["vagas"])
    return vagas


def _wait_for_turn(db, evolution, message_id: str, sent_total: int) -> None:
    """The doctor's message is stored, the expected replies went out, and nothing else is pending."""
    wait_for(lambda: db.execute("SELECT 1 FROM interacoes WHERE message_id = %s", (message_id,)).fetchone())
    wait_for(lambda: len(evolution.sent_texts()) >= sent_total and settled(db), timeout=30)


@pytest.mark.parametrize("path", DIALOGUES, ids=[p.stem for p in DIALOGUES])
def test_dialogue(path, api_client, db, evolution, claude, start_worker):
    script = yaml.safe_load(path.read_text(encoding="utf-8"))
    refs = _setup(db, script.get("setup", {}))
    start_worker()
    for n, turn in enumerate(script["turns"]):
        sent_before, calls_before = len(evolution.sent_texts()), len(claude.calls())
        for step in turn.get("model", []):
            if "tool" in step:
                claude.queue_tool_use(step["tool"], _resolve(step.get("input", {}), refs))
            else:
                claude.queue_reply(step["reply"])
        body = payloads.upsert(text=turn["doctor"])
        response = api_client.post("/webhooks/evolution", json=body, headers={"x-webhook-secret": WEBHOOK_SECRET})
        assert response.status_code == 200
        expect = turn.get("expect", {})
        wanted = len(expect.get("sent", []))
        _wait_for_turn(db, evolution, body["data"]["key"]["id"], sent_before + wanted)
        where = f"{path.name} turn {n + 1}"

        assert [m["text"] for m in evolution.sent_texts()[sent_before:]] == expect.get("sent", []), where
        offered = _offered(claude.calls()[calls_before:])
        if "offered_specialty" in expect:
            assert offered and {v["especialidade"] for v in offered} == {expect["offered_specialty"]}, where
        if "offered" in expect:
            assert sorted(v["vaga_id"] for v in offered) == sorted(refs[r] for r in expect["offered"]), where
        for ref, status in expect.get("vagas", {}).items():
            row = db.execute("SELECT status FROM vagas WHERE id = %s", (refs[ref],)).fetchone()
            assert row["status"] == status, where
        if "cliente" in expect:
            row = db.execute(
                "SELECT c.*, e.nome AS especialidade FROM clientes c "
                "LEFT JOIN especialidades e ON e.id = c.especialidade_id"
            ).fetchone()
            assert {k: row[k] for k in expect["cliente"]} == expect["cliente"], where
        if "conversation" in expect:
            row = db.execute("SELECT * FROM conversations").fetchone()
            assert {k: row[k] for k in expect["conversation"]} == expect["conversation"], where
        if "metricas" in expect:
            row = db.execute("SELECT * FROM metricas_conversa").fetchone()
            assert {k: row[k] for k in expect["metricas"]} == expect["metricas"], where
