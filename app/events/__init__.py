"""Pure reading of what arrives from outside: Evolution webhook bodies
(`evolution`), Chatwoot webhook bodies (`chatwoot`), the JSON Postgres can
store (`storable_json`) and WhatsApp text formatting (`whatsapp_format`).

No I/O at all — no database, no network, no clock beyond what a caller passes —
so every function here is tested with plain bodies. Imports only `app.core`.
"""
