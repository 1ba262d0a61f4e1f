"""Humans in the loop tables: Chatwoot mirror, notifications, manager alerts, Slack replay
protection (functions and triggers are in db/humans.sql).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Frozen: what this revision does never changes once landed. Functions,
# views, triggers and grants are not here: they live in db/ (see db/MANIFEST)
# and are applied after every upgrade.
SQL = Path(__file__).with_suffix(".sql")


def upgrade() -> None:
    op.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER IF EXISTS interacoes_chatwoot_mirror ON public.interacoes;
        DROP TRIGGER IF EXISTS conversations_handoff_humans ON public.conversations;
        DROP TRIGGER IF EXISTS julia_status_notify ON public.julia_status;
        DROP TRIGGER IF EXISTS outbox_guard_refusal_notify ON public.outbox;
        DROP TRIGGER IF EXISTS job_failures_notify ON public.job_failures;
        DROP TRIGGER IF EXISTS campanhas_finished_notify ON public.campanhas;
        DROP FUNCTION IF EXISTS public.queue_chatwoot_message(), public.on_handoff_change(),
            public.on_julia_status_change(), public.on_guard_refusal(), public.on_job_failure(),
            public.on_campaign_finished(), public.defer_chatwoot_sync(bigint, timestamptz),
            public.chatwoot_sync_work(bigint, integer), public.skip_chatwoot_sync(bigint),
            public.record_chatwoot_contact(bigint, bigint, text),
            public.record_chatwoot_conversation(bigint, bigint, bigint),
            public.forget_chatwoot_conversation(bigint, bigint), public.begin_chatwoot_message(bigint),
            public.mark_chatwoot_message_synced(bigint, bigint), public.mark_chatwoot_event_done(bigint),
            public.record_chatwoot_sync_error(bigint, text), public.handoff_note(bigint, text),
            public.record_chatwoot_agent_message(bigint, bigint, text), public.resolve_chatwoot_conversation(bigint),
            public.handoff_context(bigint), public.defer_notification(bigint, timestamptz),
            public.notify_humans(text, jsonb, text), public.claim_notification(bigint),
            public.finish_notification(bigint, text, text), public.manager_alerts_per_hour(),
            public.claim_manager_alert(bigint, text, text), public.claim_slack_request(text, bigint),
            public.redefer_humans_work(interval), public.ops_queue_depths(), public.ops_status(),
            public.ops_recent_conversations(integer), public.ops_open_handoffs();
        DROP TABLE IF EXISTS public.chatwoot_mensagens, public.chatwoot_eventos, public.chatwoot_agent_messages,
            public.chatwoot_conversas, public.chatwoot_contatos, public.notificacoes, public.manager_alert_windows,
            public.slack_requests;
        """
    )
