"""findMessages: the stand-in answers in Evolution v2's paginated shape (what
`fetchMessages` in whatsapp.baileys.service.ts returns), and the client reads it."""

from __future__ import annotations

import time

import httpx
import pytest

from app.devkit.standins.evolution import EvolutionStandin
from app.integrations.evolution import EvolutionClient, EvolutionError, FoundMessage, chat_jids

KEY = "test-evolution-key"
PHONE = "5511981677736"
JID = f"{PHONE}@s.whatsapp.net"


def post(standin: EvolutionStandin, path: str, body: dict, apikey: str = KEY) -> httpx.Response:
    return httpx.post(f"{standin.url}{path}", headers={"apikey": apikey}, json=body, timeout=5)


def test_find_messages_lists_the_accepted_sends_of_one_chat_newest_first_in_pages() -> None:
    with EvolutionStandin(api_key=KEY) as standin:
        ids = [
            post(standin, "/message/sendText/julia", {"number": PHONE, "text": f"t{n}"}).json()["key"]["id"]
            for n in range(3)
        ]
        post(standin, "/message/sendText/julia", {"number": "5511900000000", "text": "other chat"})
        post(standin, "/message/sendText/other", {"number": PHONE, "text": "other instance"})

        response = post(standin, "/chat/findMessages/julia", {"where": {"key": {"remoteJid": JID, "fromMe": True}}})
        page = post(
            standin, "/chat/findMessages/julia", {"where": {"key": {"remoteJid": JID}}, "offset": 2, "page": 2}
        ).json()["messages"]
        by_id = post(standin, "/chat/findMessages/julia", {"where": {"key": {"id": ids[1]}}}).json()["messages"]

    assert response.status_code == 200
    messages = response.json()["messages"]
    assert (messages["total"], messages["pages"], messages["currentPage"]) == (3, 1, 1)
    record = messages["records"][-1]  # the oldest
    assert record["key"] == {"remoteJid": JID, "fromMe": True, "id": ids[0]}
    assert record["message"] == {"conversation": "t0"}
    assert record["messageType"] == "conversation"
    assert isinstance(record["messageTimestamp"], int) and abs(record["messageTimestamp"] - time.time()) < 60
    assert {"id", "pushName", "instanceId", "source", "contextInfo", "MessageUpdate"} <= set(record)
    assert [r["message"]["conversation"] for r in messages["records"]] == ["t2", "t1", "t0"]  # newest first
    assert (page["total"], page["pages"], page["currentPage"]) == (3, 2, 2)
    assert [r["key"]["id"] for r in page["records"]] == [ids[0]]
    assert [r["key"]["id"] for r in by_id["records"]] == [ids[1]]


def test_find_messages_filters_by_timestamp_only_with_both_bounds_and_checks_apikey() -> None:
    with EvolutionStandin(api_key=KEY) as standin:
        post(standin, "/message/sendText/julia", {"number": PHONE, "text": "Oi"})
        future = {"gte": "2099-01-01T00:00:00Z", "lte": "2099-01-02T00:00:00Z"}
        only_gte = {"gte": "2099-01-01T00:00:00Z"}
        ms_now = int(time.time() * 1000)
        around_now = {"gte": ms_now - 60_000, "lte": ms_now + 60_000}
        totals = [
            post(standin, "/chat/findMessages/julia", {"where": {"messageTimestamp": bounds}}).json()["messages"][
                "total"
            ]
            for bounds in (future, only_gte, around_now)
        ]
        refused = post(standin, "/chat/findMessages/julia", {"where": {}}, apikey="wrong")
        searches = standin.message_searches()
    assert totals == [0, 1, 1]
    assert refused.status_code == 401
    assert len(searches) == 3


async def test_the_client_finds_what_went_to_a_number_under_either_brazilian_form() -> None:
    with EvolutionStandin(api_key=KEY) as standin:
        client = EvolutionClient(base_url=standin.url, api_key=KEY, instance="julia")
        try:
            sent = await client.send_text("553187654321", "Olá, doutora")  # the 12-digit form WhatsApp knows
            await client.send_media("553187654321", mediatype="image", media="https://x/y.png", caption="escala")
            found = await client.find_sent_messages("5531987654321")
            none = await client.find_sent_messages("5511900000000", instance="other")
        finally:
            await client.aclose()
    assert [(m.message_id, m.remote_jid, m.from_me, m.text) for m in found] == [
        (found[0].message_id, "553187654321@s.whatsapp.net", True, "escala"),
        (sent.message_id, "553187654321@s.whatsapp.net", True, "Olá, doutora"),
    ]
    assert all(isinstance(m, FoundMessage) and m.timestamp > 0 for m in found)
    assert none == []


async def test_the_client_raises_on_a_refusal() -> None:
    with EvolutionStandin(api_key=KEY) as standin:
        client = EvolutionClient(base_url=standin.url, api_key="wrong", instance="julia")
        try:
            with pytest.raises(EvolutionError) as refused:
                await client.find_messages(JID)
        finally:
            await client.aclose()
    assert (refused.value.status, refused.value.transient) == (401, False)


def test_chat_jids() -> None:
    assert chat_jids("5531987654321") == ["5531987654321@s.whatsapp.net", "553187654321@s.whatsapp.net"]
    assert chat_jids("553187654321") == ["553187654321@s.whatsapp.net", "5531987654321@s.whatsapp.net"]
    assert chat_jids("553132654321") == ["553132654321@s.whatsapp.net"]  # a landline has one form
    assert chat_jids("14155552671") == ["14155552671@s.whatsapp.net"]
    assert chat_jids("211484206436558@lid") == ["211484206436558@lid"]
