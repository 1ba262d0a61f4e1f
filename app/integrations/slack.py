"""Posting to Slack: `chat.postMessage` with the bot token (and SLACK_CHANNEL),
else the incoming webhook URL; nothing when neither is configured.
"""

from __future__ import annotations

import logging

import httpx

from app.core.config import Settings
from app.integrations.transport import ServiceClient, ServiceError, exchange

logger = logging.getLogger(__name__)


class SlackError(ServiceError):
    """Slack refused or failed a post."""

    service = "Slack"


def slack_configured(settings: Settings) -> bool:
    """True when notifications have somewhere to go."""
    return bool((settings.slack_bot_token and settings.slack_channel) or settings.slack_webhook_url)


class SlackClient(ServiceClient):
    """Async poster; use `async with`. `post` is a no-op when unconfigured."""

    def __init__(
        self,
        *,
        bot_token: str = "",
        channel: str = "",
        webhook_url: str = "",
        api_url: str = "https://slack.com/api",
        timeout: float = 10.0,
    ) -> None:
        self._bot = bool(bot_token and channel)
        self._channel = channel
        self._webhook_url = webhook_url
        self._api_url = api_url.rstrip("/")
        headers = {"authorization": f"Bearer {bot_token}"} if self._bot else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> SlackClient:
        return cls(
            bot_token=settings.slack_bot_token,
            channel=settings.slack_channel,
            webhook_url=settings.slack_webhook_url,
            api_url=settings.slack_api_url,
        )

    @property
    def configured(self) -> bool:
        return self._bot or bool(self._webhook_url)

    async def post(self, text: str) -> bool:
        """Post `text`; False when Slack is not configured. Raises SlackError."""
        if self._bot:
            data = await self._send(f"{self._api_url}/chat.postMessage", {"channel": self._channel, "text": text})
            if not (isinstance(data, dict) and data.get("ok")):
                error = data.get("error") if isinstance(data, dict) else "unexpected answer"
                transient = error == "ratelimited"
                raise SlackError(f"Slack refused chat.postMessage: {error}", status=200, transient=transient)
            return True
        if self._webhook_url:
            await self._send(self._webhook_url, {"text": text})
            return True
        return False

    async def _send(self, url: str, body: dict[str, str]) -> object:
        # The webhook URL is a secret: errors name only the kind of post.
        what = "chat.postMessage" if url.endswith("chat.postMessage") else "the incoming webhook"
        response = await exchange(SlackError, what, self._http.post(url, json=body))
        try:
            return response.json()
        except ValueError:
            return {"ok": True, "text": response.text[:50]}
