"""The operator as a running program: wiring of the long-lived parts (wiring.py), the kopf
handlers (handlers.py, the only kopf code), the Secret watch (watch.py), /health and
/metrics (health.py), leader election (leader.py) and the run itself with its signals and
watchdog (main.py). The CLI only parses flags and calls main.run."""
