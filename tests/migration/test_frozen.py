"""A landed revision is history: its files never change. Adding a revision
adds its files here once it lands; editing one of these fails this test
(fix a mistake with the next revision instead, docs/schema.md)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

VERSIONS = Path(__file__).resolve().parents[2] / "alembic" / "versions"

LANDED = {
    "0001_platform.py": "c81119242b07cd689ac1b573e93e54d12f9c69ecafc1c612a8877d57ab4c1d9a",
    "0002_core.py": "8eb34757d05e40fd104a11364e59445f6b88bd6d74eed4a1b20a92a09c7e6403",
    "0002_core.sql": "affa7db34827fa0301b7d113a90ab7ae21a980cfe5d59254f5896e3264c3ecc2",
    "0003_security.py": "f49df5e6b5d6b0ef3a7aac6d792dd810b4f28919e836670680f2ebc120ebf89d",
    "0004_health.py": "db591022c31f0624a4691b50d21be061c98fcd2e2b5eaf4b244f7457b9a2fcb5",
    "0004_health.sql": "ebd4cd11280c8fbd4980996dadf674d9ba176c1d840b57bd7a50bee081e4c4c0",
    "0005_domain.py": "f1c75a635ad74c83f25bb070c5663e53b7852363816bd69c7fbad151d2fba498",
    "0005_domain.sql": "c66b4777dc5dad15883fd142849919cd97de2d99c7ede97f545da5ae5dece6ff",
    "0006_tools.py": "4825b5ff890f82ee3f65fe23a4bd230079e08becce0bb1df58bd8a01e261ce3b",
    "0006_tools.sql": "cfe3bbfbc72776dfc415d6392732b56a76a2240aa21c31f9e9212fcd455ab010",
    "0007_knowledge.py": "69ef98dbc8fb999125c0c031356e34ed82ead36b1e08997d23d8a56324732a27",
    "0008_importer.py": "20ed15caed273bde2615e5f157c8e9dfef0f8a29d2a674138497f5e6842ff900",
    "0009_outreach.py": "68b6d0ec8e65e0f072931b03bd0ba49afc72db8ed3ee75319827981e3e3fcf1c",
    "0009_outreach.sql": "947aba3750fa289bd83acbcd86e24c7d16b9e55171b14ac03828d971de53d4c9",
    "0010_humans.py": "8a95e393896e6be69c7a29f71aeef78ca5079a61c78360d0217f76e0d1b61ecc",
    "0010_humans.sql": "d3f99c16d3c036fa7bd83c68824e3ce48d0ad58271d1836484b386a42627ba62",
    "0011_schema_ledger.py": "899348a449b86652558bae7d8ddce09299564a7b292fd3309b05848e938e2663",
    "0011_schema_ledger.sql": "c3b137b9933d43ec3ae808387a54f4d8c48c70d6ad50c53cb66222f5ad651773",
    "0012_identity.py": "dcc9f308401e77fbd4ddadb6552c61f26e9921a2ebf7bb88823635775f2279e7",
    "0012_identity.sql": "50d7c153e5b2f5d8f2675bded67b08d5a1d4e9f15a3308cc74219a245d330cef",
    "0013_numbers.py": "06e2ef91c5ee258f519933f0b17329f89d4efee9eceb628c54b78460b6171ffa",
    "0013_numbers.sql": "7dfe38dd3f60001f1ca3a9f08fbb14d36a7154145fd82fbb0eb50337eb225dbf",
    "0014_chatwoot.py": "0d77582e44ecdfd1e6e2d8cacbdd0a362956807ee151f29a0e909e23b317b17c",
    "0014_chatwoot.sql": "86d0b9867b64ecf898c4611ebf317f5dc00d0771bec8f6d4f13e8530294374ac",
    "0015_english_names.py": "6bfe95dfa50fd9b9ac0d12f2f3eccd265ca2228b8a1d33352024237a26639ddc",
    "0015_english_names.sql": "e1d95473640ace1e3f8a6aa0f3d18ee8ef405d0a652348a789e3c51b05e2a6f5",
    "0016_observability.py": "5e9b1ceccc3738c7ffab308b2791661749b3b16e2d46f504f11fd9131e8ddfab",
    "0016_observability.sql": "f692cdccf56993140f2fb00619cfe910d41f453755587f70075df1ffd55e3d9d",
    "0017_knowledge_hnsw.py": "3b2c85f3e02652c031b5a8ebb62a085c6d39fd939cd9b27b569f84cf80d804f4",
    "0017_knowledge_hnsw.sql": "6149da5d1466b355d11f4f790edb7b3c320e9c71d312c5de567423694162c9e9",
    "0018_console.py": "c344041d1f07b9ed25becb220d07dae2ea3d5c40df1cf4fd71bc783f22210456",
    "0018_console.sql": "2f567834a0b17b71ff0b1e273bcc2b3a9cfaba90a4c813adc70e1cf5b654199e",
    "0019_send_gate_index.py": "e1c284a2a39950f32c7e645757b32cec87b3b2e61f01e4ccd49e76efbfb2b0c4",
    "0019_send_gate_index.sql": "39c0ff9d9a34ea3b863ccf0824bfdf3eead8c5d75387aab20eee31a5c838290f",
    "0020_metric_shards.py": "1f22492e11a1e6ccb27282744d17b30c68c2f73bbca0805de929b40fcc997935",
    "0020_metric_shards.sql": "46b578397f973691b86f6ea3ce469e85295bef5ca97d28046c88a55870862ccd",
    "0021_knowledge_hnsw_graph.py": "3556e38cbb61f155e1054f750cf73a3a8b6ebafa907012581f9bf961d8c26ee2",
    "0021_knowledge_hnsw_graph.sql": "50d4887974b86a4d80497781c330277def3221998639b16ac9f02e32a1670318",
}


@pytest.mark.parametrize("name", sorted(LANDED))
def test_landed_revision_files_are_unchanged(name):
    path = VERSIONS / name
    assert path.is_file(), f"landed revision file {name} was removed"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == LANDED[name], (
        f"{name} was edited after it landed; write a new revision instead (docs/schema.md)"
    )


def test_every_revision_file_is_listed_once_it_exists():
    unlisted = sorted(
        p.name
        for p in VERSIONS.iterdir()
        if p.suffix in (".py", ".sql") and p.name[:4].isdigit() and p.name not in LANDED
    )
    # A new revision is fine before it lands; list it here in the commit that lands it.
    assert all(name[:4] > max(n[:4] for n in LANDED) for name in unlisted), unlisted
