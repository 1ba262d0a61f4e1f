"""Factories for domain rows, straight SQL on the test database."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any

import psycopg

_seq = itertools.count(1)


class Domain:
    """Creates reference data and shifts; returns ids."""

    def __init__(self, db: psycopg.Connection) -> None:
        self.db = db

    def _id(self, sql: str, params: tuple[Any, ...]) -> int:
        return self.db.execute(sql, params).fetchone()["id"]

    def especialidade(self, nome: str, *aliases: str) -> int:
        eid = self._id(
            "INSERT INTO especialidades (nome) VALUES (%s) ON CONFLICT (nome) DO UPDATE SET nome = excluded.nome "
            "RETURNING id",
            (nome,),
        )
        for alias in aliases:
            self.db.execute("INSERT INTO especialidades_alias (especialidade_id, alias) VALUES (%s, %s)", (eid, alias))
        return eid

    def hospital(self, nome: str, *, cidade: str = "São Paulo", regiao: str = "Zona Sul SP") -> int:
        return self._id(
            "INSERT INTO hospitais (nome, cidade, regiao) VALUES (%s, %s, %s) RETURNING id", (nome, cidade, regiao)
        )

    def periodo(self, nome: str) -> int:
        return self._id(
            "INSERT INTO periodos (nome) VALUES (%s) ON CONFLICT (nome) DO UPDATE SET nome = excluded.nome "
            "RETURNING id",
            (nome,),
        )

    def vaga(
        self,
        *,
        hospital_id: int,
        especialidade_id: int,
        periodo: str = "Noturno 12h",
        dias: int = 3,
        valor: float = 1500,
        status: str = "aberta",
    ) -> int:
        return self._id(
            "INSERT INTO vagas (hospital_id, especialidade_id, periodo_id, data, valor, status) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (hospital_id, especialidade_id, self.periodo(periodo), date.today() + timedelta(days=dias), valor, status),
        )

    def medico(self, *, nome: str = "Ana Souza", especialidade_id: int | None = None, regiao: str | None = None) -> int:
        phone = f"55119{next(_seq):08d}"
        return self._id(
            "INSERT INTO clientes (telefone, nome, especialidade_id, regiao) VALUES (%s, %s, %s, %s) RETURNING id",
            (phone, nome, especialidade_id, regiao),
        )

    def conversation(self, cliente_id: int) -> int:
        phone = self.db.execute("SELECT telefone FROM clientes WHERE id = %s", (cliente_id,)).fetchone()["telefone"]
        return self._id(
            "INSERT INTO conversations (cliente_id, reply_jid) VALUES (%s, %s) RETURNING id", (cliente_id, phone)
        )
