"""The Evolution client's onWhatsApp check against the stand-in (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import pytest

from app.devkit.standins.evolution import EvolutionStandin
from app.integrations.evolution import EvolutionClient, EvolutionError, NumberCheck

KEY = "test-evolution-key"


async def test_check_numbers_returns_the_jid_whatsapp_knows() -> None:
    with EvolutionStandin(api_key=KEY) as standin:
        standin.set_accounts("553187654321")
        client = EvolutionClient(base_url=standin.url, api_key=KEY, instance="julia")
        try:
            checks = await client.check_numbers(["5531987654321", "5511981677736"])
        finally:
            await client.aclose()
    assert checks == [
        NumberCheck(number="5531987654321", jid="553187654321@s.whatsapp.net", exists=True),
        NumberCheck(number="5511981677736", jid="5511981677736@s.whatsapp.net", exists=False),
    ]


async def test_check_numbers_raises_on_a_refusal() -> None:
    with EvolutionStandin(api_key=KEY) as standin:
        client = EvolutionClient(base_url=standin.url, api_key="wrong", instance="julia")
        try:
            with pytest.raises(EvolutionError) as refused:
                await client.check_numbers(["5531987654321"])
        finally:
            await client.aclose()
    assert (refused.value.status, refused.value.transient) == (401, False)
