"""A local stand-in for the Feishu / Lark Open Platform auth API (aiohttp).

Models what shared/lark-open-api.md records, nothing looser:
- POST /open-apis/auth/v3/{tenant,app}_access_token/internal with JSON {app_id, app_secret};
  `expire` is the remaining whole seconds of the current token, counting down; the same
  token while at least the re-issue window (1800 s) remains, a new one below it, the old
  one valid until its own expiry. app_access_token/internal also returns a tenant token.
- Bad credentials answer HTTP 200 with a code: 10014 for a known app with the wrong secret,
  10003 for an unknown app_id or a body without string app_id/app_secret (not JSON, etc.).
- GET /open-apis/bot/v3/info with `Authorization: Bearer <tenant token>`: 99991661 without
  a token, 99991663 for an unknown/expired one (HTTP 400; unconfirmed upstream).
- Rate-limit codes (99991400, 99991405) and HTTP 429 come with x-ogw-ratelimit-limit and
  x-ogw-ratelimit-reset headers.

Controls (for tests and demos):
- POST /_emulator/faults {app_id?, endpoint?, code?, http_status?, latency_ms?,
  malformed? (true|"json_garbage"|"html"|"truncated"|"wrong_types"|"missing_fields"),
  reset? (close without answering), count? (absent: until DELETE), ratelimit_reset? [1],
  ratelimit_limit? [50]}; GET and DELETE /_emulator/faults.
- POST /_emulator/apps {app_id, app_secret?, revoke? [false], activate_status? [2],
  ip_white_list? [[]], bot? [true]}: add or rotate an app; what bot/v3/info answers for it
  (bot false: a non-zero code, as for an app without the bot capability).
- Store apps (storeapi.py): app_access_token with an app_ticket, tenant_access_token per
  tenant, app_ticket/resend, tickets pushed to the event URL; POST|GET /_emulator/events.
- GET /_emulator/calls -> {"total": N, "apps": {app_id: {path: n}}} (faulted calls count;
  "-" for calls without a known app); DELETE /_emulator/calls resets.
- GET /_emulator/tokens/{app_id}: issued tokens with expiry; GET|POST /_emulator/clock
  {"advance": seconds} moves the emulator's time forward.
"""

from lark_operator.emulator.runner import EmulatorHandle, running_emulator
from lark_operator.emulator.server import STATE, create_app
from lark_operator.emulator.state import EmulatorState, Fault

__all__ = ["STATE", "EmulatorHandle", "EmulatorState", "Fault", "create_app", "running_emulator"]
