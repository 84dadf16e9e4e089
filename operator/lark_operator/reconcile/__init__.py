"""Reconciling LarkApps: the registry of what exists (registry.py), the Secret index
(index.py), the scheduler of due times (scheduler.py), the pure decision of what is due
(decide.py), the refresh as a function with an outcome (refresh.py), the token Secret's
writes (tokensecret.py), the link to the probe scheduler (probelink.py), and publish.py, the
one place that turns state into status, Events and per-LarkApp metrics. reconciler.py walks
one reconcile through those steps, top to bottom. Nothing here knows kopf."""
