from __future__ import annotations

import dataclasses
import json

import pytest

from app.events.evolution import (
    ConnectionUpdate,
    Ignored,
    InboundMessage,
    InvalidEvent,
    normalize_event_name,
    parse_event,
)

PHONE = "5511981677736"
PHONE_JID = "5511981677736@s.whatsapp.net"
LID = "211484206436558@lid"


def webhook(key: dict | None = None, message: dict | None = None, **data: object) -> dict:
    """A realistic Evolution v2 messages.upsert body; keyword args override data fields."""
    body_data: dict = {
        "key": {"remoteJid": PHONE_JID, "fromMe": False, "id": "3A287F9E01CFA289E153"} if key is None else key,
        "pushName": "Dra. Ana",
        "status": "DELIVERY_ACK",
        "message": {"conversation": "Oi, tenho interesse"} if message is None else message,
        "contextInfo": None,
        "messageType": "conversation",
        "messageTimestamp": 1733142040,
        "instanceId": "c5b1a2e4-9f0d-4c2b-8e55-0b7f3d6a1e90",
        "source": "android",
    }
    body_data.update(data)
    return {
        "event": "messages.upsert",
        "instance": "julia-prod",
        "data": body_data,
        "destination": "https://julia.example.com/webhooks/evolution",
        "date_time": "2025-12-02T09:20:40.512Z",
        "sender": "5511900000000@s.whatsapp.net",
        "server_url": "https://evolution.example.com",
        "apikey": None,
    }


def parse_message(body: object, path_event: str | None = None) -> InboundMessage:
    result = parse_event(body, path_event)
    assert isinstance(result, InboundMessage), result
    return result


# --- LID layouts -------------------------------------------------------------


def test_lid_in_remote_jid_with_phone_in_alt_evolution_235():
    key = {
        "remoteJid": LID,
        "remoteJidAlt": PHONE_JID,
        "fromMe": False,
        "id": "3A287F9E01CFA289E153",
        "participant": "",
        "addressingMode": "lid",
    }
    msg = parse_message(webhook(key=key))
    assert msg.phone == PHONE
    assert msg.lid == LID
    assert msg.remote_jid == LID
    assert msg.message_id == "3A287F9E01CFA289E153"
    assert msg.instance == "julia-prod"
    assert msg.text == "Oi, tenho interesse"


def test_phone_in_remote_jid_with_lid_in_alt_evolution_237():
    key = {
        "remoteJid": PHONE_JID,
        "remoteJidAlt": LID,
        "fromMe": False,
        "id": "3EB0C767D26A1B2F4E11",
        "addressingMode": "pn",
    }
    msg = parse_message(webhook(key=key))
    assert msg.phone == PHONE
    assert msg.lid == LID
    assert msg.remote_jid == PHONE_JID


def test_classic_phone_only_has_no_lid():
    msg = parse_message(webhook())
    assert msg.phone == PHONE
    assert msg.lid is None
    assert msg.remote_jid == PHONE_JID


def test_older_evolution_puts_phone_in_sender_pn():
    key = {"remoteJid": LID, "senderPn": PHONE_JID, "fromMe": False, "id": "ABC123"}
    msg = parse_message(webhook(key=key))
    assert msg.phone == PHONE
    assert msg.lid == LID
    assert msg.remote_jid == LID


def test_sender_lid_is_used_when_remote_jid_is_a_phone():
    key = {"remoteJid": PHONE_JID, "senderLid": LID, "fromMe": False, "id": "ABC124"}
    msg = parse_message(webhook(key=key))
    assert msg.phone == PHONE
    assert msg.lid == LID


def test_lid_only_message_is_valid_without_phone():
    key = {"remoteJid": LID, "fromMe": False, "id": "3A5F0C1D2E3B4A596877"}
    body = webhook(key=key)
    del body["data"]["pushName"]
    msg = parse_message(body)
    assert msg.phone is None
    assert msg.lid == LID
    assert msg.remote_jid == LID
    assert msg.push_name is None
    assert msg.text == "Oi, tenho interesse"


def test_device_suffix_is_stripped_from_phone():
    key = {"remoteJid": "5511981677736:12@s.whatsapp.net", "fromMe": False, "id": "X1"}
    msg = parse_message(webhook(key=key))
    assert msg.phone == PHONE
    assert msg.remote_jid == "5511981677736:12@s.whatsapp.net"


# --- content -----------------------------------------------------------------


def test_text_from_conversation():
    msg = parse_message(webhook())
    assert msg.text == "Oi, tenho interesse"
    assert msg.media_type is None
    assert msg.message_type == "conversation"
    assert msg.push_name == "Dra. Ana"


def test_text_from_extended_text_message():
    message = {
        "extendedTextMessage": {
            "text": "Vi a vaga em https://exemplo.com",
            "previewType": "NONE",
        },
        "messageContextInfo": {"deviceListMetadataVersion": 2},
    }
    msg = parse_message(webhook(message=message, messageType="extendedTextMessage"))
    assert msg.text == "Vi a vaga em https://exemplo.com"
    assert msg.media_type is None
    assert msg.message_type == "extendedTextMessage"


def test_text_from_image_caption():
    message = {
        "imageMessage": {
            "url": "https://mmg.whatsapp.net/o1/v/t62.7118-24/abc",
            "mimetype": "image/jpeg",
            "caption": "Meu CRM",
            "fileLength": "48213",
        },
        "base64": "aGVsbG8=",
    }
    msg = parse_message(webhook(message=message, messageType="imageMessage"))
    assert msg.text == "Meu CRM"
    assert msg.media_type == "image"


def test_text_from_document_with_caption():
    message = {
        "documentWithCaptionMessage": {
            "message": {
                "documentMessage": {
                    "mimetype": "application/pdf",
                    "fileName": "curriculo.pdf",
                    "caption": "Segue meu currículo",
                }
            }
        }
    }
    msg = parse_message(webhook(message=message, messageType="documentWithCaptionMessage"))
    assert msg.text == "Segue meu currículo"
    assert msg.media_type == "document"


def test_text_inside_ephemeral_wrapper():
    message = {"ephemeralMessage": {"message": {"extendedTextMessage": {"text": "sumindo"}}}}
    msg = parse_message(webhook(message=message))
    assert msg.text == "sumindo"


def test_audio_without_text():
    message = {
        "audioMessage": {
            "mimetype": "audio/ogg; codecs=opus",
            "seconds": 7,
            "ptt": True,
        }
    }
    msg = parse_message(webhook(message=message, messageType="audioMessage"))
    assert msg.text is None
    assert msg.media_type == "audio"
    assert msg.message_type == "audioMessage"


def test_from_me_true():
    key = {"remoteJid": PHONE_JID, "fromMe": True, "id": "3EB0AA11"}
    msg = parse_message(webhook(key=key))
    assert msg.from_me is True


def test_from_me_defaults_to_false():
    assert parse_message(webhook()).from_me is False


# --- timestamps --------------------------------------------------------------


def test_timestamp_as_int():
    assert parse_message(webhook()).timestamp == 1733142040


def test_timestamp_as_string():
    msg = parse_message(webhook(messageTimestamp="1733142040"))
    assert msg.timestamp == 1733142040


def test_timestamp_as_long_object():
    msg = parse_message(webhook(messageTimestamp={"low": 1733142040, "high": 0, "unsigned": True}))
    assert msg.timestamp == 1733142040


def test_timestamp_long_object_with_negative_low_half():
    # 3_000_000_000 does not fit a signed 32-bit int, so Long.js stores it negative.
    msg = parse_message(webhook(messageTimestamp={"low": 3_000_000_000 - 2**32, "high": 0}))
    assert msg.timestamp == 3_000_000_000


def test_timestamp_missing_or_garbage_is_none():
    assert parse_message(webhook(messageTimestamp=None)).timestamp is None
    assert parse_message(webhook(messageTimestamp="soon")).timestamp is None


# --- ignored -----------------------------------------------------------------


def test_group_message_is_ignored():
    key = {
        "remoteJid": "120363041234567890@g.us",
        "participant": PHONE_JID,
        "fromMe": False,
        "id": "G1",
    }
    assert parse_event(webhook(key=key)) == Ignored(event="messages.upsert", reason="group message")


def test_status_broadcast_is_ignored():
    key = {
        "remoteJid": "status@broadcast",
        "participant": PHONE_JID,
        "fromMe": False,
        "id": "S1",
    }
    result = parse_event(webhook(key=key))
    assert result == Ignored(event="messages.upsert", reason="status broadcast")


def test_broadcast_list_and_newsletter_are_ignored():
    for jid in ("1733142040@broadcast", "120363300000000000@newsletter"):
        result = parse_event(webhook(key={"remoteJid": jid, "fromMe": False, "id": "B1"}))
        assert isinstance(result, Ignored)


def test_presence_update_is_ignored():
    body = {
        "event": "presence.update",
        "instance": "julia-prod",
        "data": {
            "id": PHONE_JID,
            "presences": {PHONE_JID: {"lastKnownPresence": "composing"}},
        },
        "date_time": "2025-12-02T09:20:40.512Z",
        "sender": "5511900000000@s.whatsapp.net",
        "server_url": "https://evolution.example.com",
        "apikey": None,
    }
    result = parse_event(body)
    assert result == Ignored(event="presence.update", reason="event presence.update not handled")


def test_other_events_are_ignored():
    for name in (
        "messages.update",
        "send.message",  # without a key
        "connection.update",
        "qrcode.updated",
    ):
        result = parse_event({"event": name, "instance": "julia-prod", "data": {}})
        assert isinstance(result, Ignored)
        assert result.event == name


def test_protocol_message_is_ignored():
    message = {"protocolMessage": {"key": {"id": "OLD"}, "type": "REVOKE"}}
    result = parse_event(webhook(message=message, messageType="protocolMessage"))
    assert result == Ignored(event="messages.upsert", reason="protocol message")


def test_reaction_is_ignored():
    message = {"reactionMessage": {"key": {"id": "OLD"}, "text": "👍"}}
    result = parse_event(webhook(message=message, messageType="reactionMessage"))
    assert result == Ignored(event="messages.upsert", reason="reaction")


def test_missing_key_id_is_ignored():
    result = parse_event(webhook(key={"remoteJid": PHONE_JID, "fromMe": False}))
    assert result == Ignored(event="messages.upsert", reason="no key.id")


def test_message_without_content_is_ignored():
    result = parse_event(webhook(message={"messageContextInfo": {}}))
    assert result == Ignored(event="messages.upsert", reason="no message content")
    body = webhook()
    del body["data"]["message"]
    assert parse_event(body) == Ignored(event="messages.upsert", reason="no message content")


def test_empty_data_list_is_ignored():
    body = webhook()
    body["data"] = []
    assert parse_event(body) == Ignored(event="messages.upsert", reason="empty data")


def test_one_element_data_list_is_accepted():
    body = webhook()
    body["data"] = [body["data"]]
    assert parse_message(body).phone == PHONE


def test_data_list_with_several_messages_is_invalid():
    body = webhook()
    body["data"] = [body["data"], body["data"]]
    with pytest.raises(InvalidEvent):
        parse_event(body)


def test_lid_device_suffix_is_stripped():
    key = {"remoteJid": "211484206436558:3@lid", "fromMe": False, "id": "L2"}
    assert parse_message(webhook(key=key)).lid == LID


# --- event names -------------------------------------------------------------


def test_normalize_event_name():
    assert normalize_event_name("MESSAGES_UPSERT") == "messages.upsert"
    assert normalize_event_name("messages-upsert") == "messages.upsert"
    assert normalize_event_name("messages.upsert") == "messages.upsert"


def test_path_event_used_when_body_lacks_event():
    body = webhook()
    del body["event"]
    msg = parse_message(body, path_event="messages-upsert")
    assert msg.phone == PHONE


def test_uppercase_event_name():
    body = webhook()
    body["event"] = "MESSAGES_UPSERT"
    assert parse_message(body).phone == PHONE


# --- invalid -----------------------------------------------------------------


def test_non_dict_body_is_invalid():
    for body in (None, [], "messages.upsert", 42):
        with pytest.raises(InvalidEvent):
            parse_event(body)


def test_missing_event_is_invalid():
    body = webhook()
    del body["event"]
    with pytest.raises(InvalidEvent, match="missing 'event'"):
        parse_event(body)


def test_data_not_an_object_is_invalid():
    body = webhook()
    body["data"] = "oops"
    with pytest.raises(InvalidEvent, match="'data' must be an object"):
        parse_event(body)


def test_missing_key_is_invalid():
    body = webhook()
    del body["data"]["key"]
    with pytest.raises(InvalidEvent):
        parse_event(body)


def test_remote_jid_not_a_string_is_invalid():
    with pytest.raises(InvalidEvent):
        parse_event(webhook(key={"remoteJid": None, "fromMe": False, "id": "X"}))


# --- serialisation -----------------------------------------------------------


def test_to_json_from_json_round_trip():
    key = {"remoteJid": LID, "remoteJidAlt": PHONE_JID, "fromMe": False, "id": "RT1"}
    msg = parse_message(webhook(key=key, messageTimestamp="1733142040"))
    payload = json.loads(json.dumps(msg.to_json()))
    assert payload["phone"] == PHONE
    assert InboundMessage.from_json(payload) == msg


def test_send_message_is_an_echo_of_an_api_send():
    body = {
        "event": "send.message",
        "instance": "julia-prod",
        "data": {
            "key": {"remoteJid": "5511981677736@s.whatsapp.net", "fromMe": True, "id": "3EB0ABC"},
            "message": {"conversation": "Oi! Aqui é a Julia."},
            "messageType": "conversation",
            "messageTimestamp": 1764460000,
        },
    }
    result = parse_event(body)
    assert isinstance(result, InboundMessage)
    assert (result.message_id, result.from_me, result.phone, result.text) == (
        "3EB0ABC",
        True,
        "5511981677736",
        "Oi! Aqui é a Julia.",
    )


# --- shapes read from Evolution's source (whatsapp.baileys.service.ts) --------


def test_evolution_231_232_keep_the_lid_in_previous_remote_jid():
    # 'messages.upsert' in 2.3.1/2.3.2: an @lid remoteJid with senderPn is rewritten,
    #   received.key.previousRemoteJid = received.key.remoteJid;
    #   received.key.remoteJid = received.key.senderPn;
    # and prepareMessage() sends key: message.key as it is.
    key = {
        "remoteJid": PHONE_JID,
        "fromMe": False,
        "id": "3A287F9E01CFA289E153",
        "senderPn": PHONE_JID,
        "participant": "",
        "previousRemoteJid": LID,
    }
    msg = parse_message(webhook(key=key))
    assert (msg.phone, msg.lid, msg.remote_jid) == (PHONE, LID, PHONE_JID)


def test_speech_to_text_is_read_as_the_doctors_words():
    # With OpenAI speech-to-text on, 2.3.x sets
    #   messageRaw.message.speechToText = `[audio] ${transcription}`
    # beside the audioMessage.
    message = {
        "audioMessage": {"mimetype": "audio/ogg; codecs=opus", "seconds": 7, "ptt": True},
        "speechToText": "[audio] Oi, tem plantão de pediatria no sábado?",
    }
    msg = parse_message(webhook(message=message, messageType="audioMessage"))
    assert msg.text == "Oi, tem plantão de pediatria no sábado?"
    assert msg.media_type == "audio"


def test_messages_update_error_comes_without_a_code():
    # 'messages.update' builds {keyId, remoteJid, fromMe, participant, status, pollUpdates,
    # instanceId} (+ messageId when stored); status[0] is 'ERROR'. No error code anywhere.
    from app.events.evolution import StatusUpdate

    body = {
        "event": "messages.update",
        "instance": "julia-prod",
        "data": {
            "keyId": "3EB0C431C26A1916E0B2",
            "remoteJid": PHONE_JID,
            "fromMe": True,
            "participant": PHONE_JID,
            "status": "ERROR",
            "instanceId": "c5b1a2e4-9f0d-4c2b-8e55-0b7f3d6a1e90",
            "messageId": "cm4m8xk2p0001qv0k3g7h9z1a",
        },
        "destination": "https://julia.example.com/webhooks/evolution",
        "date_time": "2025-12-02T09:20:41.000Z",
        "sender": "5511900000000@s.whatsapp.net",
        "server_url": "https://evolution.example.com",
        "apikey": None,
    }
    assert parse_event(body) == [StatusUpdate(message_id="3EB0C431C26A1916E0B2", status="ERROR", remote_jid=PHONE_JID)]


def test_a_message_with_neither_phone_nor_lid_is_ignored():
    key = {"remoteJid": "123@s.whatsapp.net", "fromMe": False, "id": "3A1"}  # too short for a phone
    assert isinstance(parse_event(webhook(key=key)), Ignored)


def test_an_overlong_key_id_is_invalid():
    with pytest.raises(InvalidEvent, match="longer than"):
        parse_event(webhook(key={"remoteJid": PHONE_JID, "fromMe": False, "id": "A" * 300}))


def test_an_out_of_range_timestamp_is_none():
    assert parse_message(webhook(messageTimestamp=10**30)).timestamp is None


# connection.update: Evolution sends {instance, data: {instance, wuid, profileName, state, statusReason}}
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"event": "connection.update", "instance": "julia-2", "data": {"state": "open", "statusReason": 200}},
            ConnectionUpdate(instance="julia-2", state="open", reason="200"),
        ),
        (
            {"event": "CONNECTION_UPDATE", "data": {"instance": "julia-3", "state": "close", "statusReason": 401}},
            ConnectionUpdate(instance="julia-3", state="close", reason="401"),
        ),
        (
            {"event": "connection.update", "instance": "julia-2", "data": {"state": "connecting"}},
            ConnectionUpdate(instance="julia-2", state="connecting", reason=None),
        ),
    ],
)
def test_connection_update_is_parsed(body, expected):
    assert parse_event(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        {"event": "connection.update", "data": {"state": "open"}},
        {"event": "connection.update", "instance": "julia-2", "data": {"state": "refused"}},
        {"event": "connection.update", "instance": "julia-2"},
    ],
)
def test_connection_update_without_instance_or_known_state_is_ignored(body):
    assert isinstance(parse_event(body), Ignored)


def test_to_json_is_every_field_in_order():
    key = {"remoteJid": LID, "remoteJidAlt": PHONE_JID, "fromMe": False, "id": "RT2"}
    msg = parse_message(webhook(key=key, messageTimestamp="1733142040", pushName="Ana"))
    assert list(msg.to_json().items()) == list(dataclasses.asdict(msg).items())
