"""Condition reason -> what a person should do, in one line.

The long form of each entry is in docs/troubleshooting.md (a test keeps the two in step:
every reason here has a section there, under the same word).
"""

from __future__ import annotations

HINTS: dict[str, str] = {
    # CredentialsValid
    "Valid": "Nothing to do.",
    "InvalidCredentials": "Check appId and the App Secret in the referenced Secret against the "
    "developer console (Credentials & Basic Info); make sure the app version is published.",
    "SecretNotFound": "Create the Secret named in the LarkApp in the same namespace; the operator "
    "retries within seconds of it appearing.",
    "SecretKeyMissing": "Add the key named by the reference to the Secret's data (the key name "
    "is case-sensitive); the operator retries within seconds.",
    "IPDenied": "Add the cluster's egress IP to the app's IP allowlist in the developer console "
    "(Security Settings).",
    "AppDisabled": "The app is disabled or not installed for the tenant: re-enable or install it "
    "in the admin console, then annotate the LarkApp to refresh.",
    "ScopeMissing": "Grant the missing permission scope in the developer console and publish a "
    "new app version.",
    "RateLimited": "The Open Platform is rate limiting this app; the operator waits for "
    "x-ogw-ratelimit-reset. If it persists, look for other clients fetching tokens for this app.",
    "UpstreamUnavailable": "The Open Platform could not be reached or answered with a server "
    "error; the operator keeps the last good token and retries. Check egress/DNS/proxy if it "
    "persists.",
    "QuotaExceeded": "The app's monthly API quota is used up: raise the plan or wait for the "
    "next period.",
    "DomainNotAllowed": "spec.domain is a URL the operator was not started with: add it to "
    "--allowed-base-url (Helm value allowedBaseUrls) or use 'feishu' / 'lark'.",
    "UnknownError": "The Open Platform answered an unexpected code; it is reported verbatim. "
    "Look it up in the platform's error code table.",
    # TokenReady
    "Issued": "Nothing to do.",
    "Refreshed": "Nothing to do.",
    "RefreshFailed": "Fix the cause named in lastError; a token already issued stays in the "
    "Secret until it expires, so do it before status.token.expiresAt.",
    "SecretWriteFailed": "The token Secret could not be written (RBAC, an immutable or foreign "
    "Secret of that name, an admission webhook, a quota): lastError has the API server's "
    "answer; fix that or set spec.target.secretName to another name.",
    "SecretNotOwned": "spec.target.secretName names a Secret the operator did not create for "
    "this LarkApp (or one it reads): it is never written or deleted. Choose a name of its own, "
    "or have the Secret's owner annotate it larkservice.io/adopt=true.",
    "Expired": "The token in the Secret has expired and could not be renewed: fix the cause in "
    "lastError; workloads are failing authentication now.",
    "Suspended": "spec.suspend is true: set it to false to resume refreshing and probing.",
    "Pending": "Waiting for the first token.",
    # Probes
    "Healthy": "Nothing to do.",
    "Unreachable": "Nothing answers at the configured address: check the server is running, "
    "the host/port in the DSN/URL, Services and NetworkPolicies.",
    "Timeout": "The server accepted the connection but did not answer within probes.timeout: "
    "look for an overloaded or hung server, or a proxy that swallows traffic.",
    "AuthFailed": "The server rejected the credentials in the DSN/URL Secret: fix the user or "
    "password there (the password is never shown).",
    "TooManyConnections": "Connections are near max_connections: look for connection leaks, "
    "add a pooler (PgBouncer) or raise max_connections.",
    "MemoryPressure": "Redis is near maxmemory: check evictions and big keys, raise maxmemory "
    "or set an eviction policy.",
    "ReplicationLag": "A replica is behind its primary: check replica I/O, network and long "
    "transactions on the primary.",
    "Deadlocks": "Deadlocks were detected since the last probe: find the conflicting "
    "transactions in the server log and order their locks consistently.",
    "NoConsumers": "Messages wait in a watched queue with no consumer attached: check that the "
    "consuming workload is running and connected.",
    "QueueBacklog": "A watched queue holds more ready messages than maxReady: scale consumers or "
    "find why they are slow.",
    "AlarmRaised": "RabbitMQ raised a memory or disk alarm and blocks publishers: free "
    "memory/disk or raise the watermarks.",
    "InvalidURL": "The DSN/URL in the referenced Secret could not be parsed: fix its format "
    "(e.g. postgresql://user:pass@host:5432/db).",
    "ProbeError": "The probe failed in an unexpected way; the message says how.",
}


def hint_for(reason: str) -> str:
    return HINTS.get(reason, HINTS["UnknownError"])
