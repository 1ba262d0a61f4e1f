"""Markdown (what Chatwoot agents type) to WhatsApp formatting: pure, no I/O.

WhatsApp knows `*bold*`, `_italic_`, `~strike~`, ```` ```monospace``` ````,
`- ` lists and `> ` quotes; Markdown's `**bold**`, `*italic*`, `~~strike~~`,
headings, links and code spans are rewritten to those. Code is copied as is.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_BULLET = re.compile(r"^([ \t]*)[*+][ \t]+", re.MULTILINE)
_RULE = re.compile(r"^[ \t]*([-*_])([ \t]*\1){2,}[ \t]*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_BOLD_ITALIC = re.compile(r"\*\*\*(?=\S)(.+?)(?<=\S)\*\*\*", re.DOTALL)
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", re.DOTALL)
_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~", re.DOTALL)
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!~>|])")
_BLANKS = re.compile(r"\n{3,}")

# Private-use characters stand for what must survive the later rewrites.
_BOLD_MARK = "\ue000"
_SLOT = "\ue001{}\ue002"
_SLOT_RE = re.compile("\ue001(\\d+)\ue002")


def markdown_to_whatsapp(text: str) -> str:
    """WhatsApp-formatted text for a Markdown message; plain text comes back unchanged."""
    if not text:
        return text
    kept: list[str] = []

    def keep(value: str) -> str:
        kept.append(value)
        return _SLOT.format(len(kept) - 1)

    out = text.replace("\r\n", "\n")
    out = _FENCE.sub(lambda m: keep("```" + m[1].rstrip("\n") + "```"), out)
    out = _INLINE_CODE.sub(lambda m: keep("```" + m[1] + "```"), out)
    out = _ESCAPE.sub(lambda m: keep(m[1]), out)
    out = _AUTOLINK.sub(lambda m: keep(m[1].removeprefix("mailto:")), out)
    out = _IMAGE.sub(lambda m: keep(_link(m[1], m[2])), out)
    out = _LINK.sub(lambda m: keep(m[2]) if m[1].strip() == m[2] else _link(m[1], keep(m[2])), out)
    out = _RULE.sub("", out)
    out = _HEADING.sub(lambda m: f"{_BOLD_MARK}{m[1].strip('*_ ')}{_BOLD_MARK}", out)
    out = _BULLET.sub(r"\1- ", out)
    out = _BOLD_ITALIC.sub(lambda m: f"{_BOLD_MARK}_{m[1]}_{_BOLD_MARK}", out)
    out = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m[2]}{_BOLD_MARK}", out)
    out = _ITALIC_STAR.sub(r"_\1_", out)
    out = _STRIKE.sub(r"~\1~", out)
    out = out.replace(_BOLD_MARK, "*")
    out = _BLANKS.sub("\n\n", out)
    while _SLOT_RE.search(out):
        out = _SLOT_RE.sub(lambda m: kept[int(m[1])], out)
    return out.strip("\n")


def _link(label: str, url: str) -> str:
    label = label.strip()
    return url if not label or label == url else f"{label} ({url})"
