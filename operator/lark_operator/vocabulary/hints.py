"""Condition reason -> what a person should do, in one line.

The long form of each entry is in docs/troubleshooting.md (a test keeps the two in step:
every reason here has a section there, under the same word).
"""

from __future__ import annotations

from lark_operator.vocabulary.reasons import Reason

R = Reason

HINTS: dict[Reason, str] = {
    # CredentialsValid
    R.VALID: "Nothing to do.",
    R.INVALID_CREDENTIALS: "Check appId and the App Secret in the referenced Secret against the "
    "developer console (Credentials & Basic Info); make sure the app version is published.",
    R.SECRET_NOT_FOUND: "Create the Secret named in the LarkApp in the same namespace; the "
    "operator retries within seconds of it appearing.",
    R.SECRET_KEY_MISSING: "Add the key named by the reference to the Secret's data (the key name "
    "is case-sensitive); the operator retries within seconds.",
    R.IP_DENIED: "Add the cluster's egress IP to the app's IP allowlist in the developer console "
    "(Security Settings).",
    R.APP_DISABLED: "The app is disabled or not installed for the tenant: re-enable or install it "
    "in the admin console, then annotate the LarkApp to refresh.",
    R.SCOPE_MISSING: "Grant the missing permission scope in the developer console and publish a "
    "new app version.",
    R.RATE_LIMITED: "The Open Platform is rate limiting this app; the operator waits for "
    "x-ogw-ratelimit-reset. If it persists, look for other clients fetching tokens for this app.",
    R.UPSTREAM_UNAVAILABLE: "The Open Platform could not be reached or answered with a server "
    "error; the operator keeps the last good token and retries. Check egress/DNS/proxy if it "
    "persists.",
    R.QUOTA_EXCEEDED: "The app's monthly API quota is used up: raise the plan or wait for the "
    "next period.",
    R.DOMAIN_NOT_ALLOWED: "spec.domain is a URL the operator was not started with: use 'feishu' / "
    "'lark', or have the operator's admin add your Open Platform's base URL to "
    "--allowed-base-url (Helm value allowedBaseUrls). A link-local or cloud metadata address "
    "(169.254.0.0/16, fe80::/10, metadata.google.internal) is never allowed.",
    R.TICKET_MISSING: "No app_ticket reached the operator: set the developer console's Events & "
    "Callbacks request URL to the operator's POST /lark/events (chart: events Service/Ingress) "
    "and check lark_service_callbacks_rejected_total; a resend was asked.",
    R.NOT_ALLOWED: "spec.appRef names a ClusterLarkApp that does not exist or does not admit this "
    "namespace: ask its admin to add the namespace to spec.allowedNamespaces (names, or labels "
    "its selector matches). A token already issued stays in the Secret until it expires.",
    R.UNKNOWN_ERROR: "The Open Platform answered an unexpected code; it is reported verbatim. "
    "Look it up in the platform's error code table.",
    # TokenReady
    R.ISSUED: "Nothing to do.",
    R.REFRESHED: "Nothing to do.",
    R.REFRESH_FAILED: "Fix the cause named in lastError; a token already issued stays in the "
    "Secret until it expires, so do it before status.token.expiresAt.",
    R.SECRET_WRITE_FAILED: "The token Secret could not be written (RBAC, an immutable or foreign "
    "Secret of that name, an admission webhook, a quota): lastError has the API server's "
    "answer; fix that or set spec.target.secretName to another name.",
    R.SECRET_NOT_OWNED: "spec.target.secretName names a Secret the operator did not create for "
    "this LarkApp (or one it reads): it is never written or deleted. Choose a name of its own, "
    "or have the Secret's owner annotate it larkservice.io/adopt=true.",
    R.TEMPLATE_ERROR: "spec.target.template does not render for the key named in the message "
    "(a syntax error, an unknown variable, a construct the sandbox refuses): fix it; the token "
    "Secret keeps its last good content meanwhile.",
    R.REFRESH_CAPACITY_EXCEEDED: "The operator has more LarkApps than it can refresh before "
    "their tokens expire, and this token is projected to lapse (lark_service_refresh_shortfall"
    "). Nothing is wrong with this LarkApp: the operator's admin splits LarkApps over more "
    "releases by namespace or removes what throttles it (docs/scaling.md).",
    R.EXPIRED: "The token in the Secret has expired and could not be renewed: fix the cause in "
    "lastError; workloads are failing authentication now.",
    R.SUSPENDED: "spec.suspend is true: set it to false to resume refreshing and probing.",
    R.PENDING: "Waiting for the first token.",
    # AppAvailable (bot/v3/info; AppDisabled is shared with CredentialsValid)
    R.AVAILABLE: "Nothing to do.",
    R.LICENSE_EXPIRED: "The app's licence expired for the tenant: renew it, then annotate the "
    "LarkApp to refresh (kubectl lark refresh).",
    R.PLAN_EXPIRED: "The tenant's plan expired: renew it in the admin console, then annotate the "
    "LarkApp to refresh (kubectl lark refresh).",
    R.UNKNOWN: "bot/v3/info could not tell (no bot capability, or an unexpected answer, reported "
    "verbatim): nothing is broken for that alone; see docs/troubleshooting.md.",
    # RolloutRestart
    R.ENABLED: "Nothing to do.",
    R.WORKLOAD_NOT_FOUND: "A workload named in spec.target.rolloutRestart does not exist in the "
    "LarkApp's namespace: fix its kind or name, or remove it from the list.",
    R.ROLLOUT_FAILED: "The operator could not set larkservice.io/token-fingerprint on a workload "
    "in spec.target.rolloutRestart (the message has the API server's answer): check the "
    "operator's RBAC (get/patch on apps workloads) and admission policies.",
    # Probes
    R.HEALTHY: "Nothing to do.",
    R.UNREACHABLE: "Nothing answers at the configured address: check the server is running, "
    "the host/port in the DSN/URL, Services and NetworkPolicies.",
    R.TIMEOUT: "The server accepted the connection but did not answer within probes.timeout: "
    "look for an overloaded or hung server, or a proxy that swallows traffic.",
    R.AUTH_FAILED: "The server rejected the credentials in the DSN/URL Secret: fix the user or "
    "password there (the password is never shown).",
    R.TOO_MANY_CONNECTIONS: "Connections are near max_connections: look for connection leaks, "
    "add a pooler (PgBouncer) or raise max_connections.",
    R.MEMORY_PRESSURE: "Redis is near maxmemory: check evictions and big keys, raise maxmemory "
    "or set an eviction policy.",
    R.REPLICATION_LAG: "A replica is behind its primary: check replica I/O, network and long "
    "transactions on the primary.",
    R.DEADLOCKS: "Deadlocks were detected since the last probe: find the conflicting "
    "transactions in the server log and order their locks consistently.",
    R.NO_CONSUMERS: "Messages wait in a watched queue with no consumer attached: check that the "
    "consuming workload is running and connected.",
    R.QUEUE_BACKLOG: "A watched queue holds more ready messages than maxReady: scale consumers or "
    "find why they are slow.",
    R.ALARM_RAISED: "RabbitMQ raised a memory or disk alarm and blocks publishers: free "
    "memory/disk or raise the watermarks.",
    R.INVALID_URL: "The DSN/URL in the referenced Secret could not be parsed: fix its format "
    "(e.g. postgresql://user:pass@host:5432/db).",
    R.PROBE_ERROR: "The probe failed in an unexpected way; the message says how.",
}


def hint_for(reason: str) -> str:
    """The hint of a reason (a Reason or its word); unknown words get UnknownError's."""
    try:
        return HINTS[Reason(reason)]
    except (ValueError, KeyError):
        return HINTS[R.UNKNOWN_ERROR]
