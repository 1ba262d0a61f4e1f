"""The tools Claude may use. Definitions only: each tool's effect is the SQL
function `execute_tool(conversation, name, input)` dispatches to (db/tools.sql).
"""

from __future__ import annotations

from typing import Any

TOOLS: list[dict[str, Any]] = [
    {
        "name": "buscar_vagas",
        "description": (
            "Busca plantões (vagas) abertos. Use antes de oferecer qualquer plantão: nunca invente vagas. "
            "Sem especialidade, usa a do médico. Devolve vaga_id, hospital, cidade, região, data, período e valor."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "especialidade": {"type": "string", "description": "Nome ou sigla, ex.: 'GO', 'Pediatria'."},
                "regiao": {"type": "string", "description": "Região, cidade ou hospital, ex.: 'ABC', 'Campinas'."},
                "periodo": {"type": "string", "description": "Ex.: 'Noturno', 'Diurno', '24h'."},
                "data_inicio": {"type": "string", "format": "date", "description": "AAAA-MM-DD"},
                "data_fim": {"type": "string", "format": "date", "description": "AAAA-MM-DD"},
                "limite": {"type": "integer", "minimum": 1, "maximum": 20},
            },
        },
    },
    {
        "name": "reservar_vaga",
        "description": (
            "Reserva uma vaga para o médico desta conversa, depois que ele confirmar claramente que quer. "
            "Se outra pessoa já reservou, a resposta diz que não está disponível."
        ),
        "input_schema": {
            "type": "object",
            "properties": {"vaga_id": {"type": "integer"}},
            "required": ["vaga_id"],
        },
    },
    {
        "name": "salvar_preferencias",
        "description": (
            "Guarda o que o médico contou sobre si: nome, crm, especialidade, regiao, cidade e preferências "
            "(ex.: periodos preferidos, hospitais, dias da semana, valor mínimo)."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "nome": {"type": "string"},
                "crm": {"type": "string"},
                "especialidade": {"type": "string"},
                "regiao": {"type": "string"},
                "cidade": {"type": "string"},
                "periodos": {"type": "array", "items": {"type": "string"}},
                "hospitais": {"type": "array", "items": {"type": "string"}},
                "dias_semana": {"type": "array", "items": {"type": "string"}},
                "valor_minimo": {"type": "number"},
            },
        },
    },
    {
        "name": "transferir_para_humano",
        "description": (
            "Passa a conversa para a equipe humana: quando o médico pede uma pessoa, reclama, negocia fora "
            "das regras, ou quando você não consegue ajudar. Depois disso você não responde mais nesta conversa."
        ),
        "input_schema": {
            "type": "object",
            "properties": {"motivo": {"type": "string", "description": "Motivo curto, para a equipe."}},
            "required": ["motivo"],
        },
    },
    {
        "name": "registrar_opt_out",
        "description": (
            "O médico pediu para não receber mais mensagens. Registre e confirme uma única vez, com educação."
        ),
        "input_schema": {
            "type": "object",
            "properties": {"motivo": {"type": "string"}},
        },
    },
]

TOOL_NAMES = frozenset(t["name"] for t in TOOLS)
