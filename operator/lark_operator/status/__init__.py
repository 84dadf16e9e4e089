"""LarkApp status as pure functions: facts in (facts.py), a typed status out (model.py,
built by build.py), and the Events that two statuses differ by (events.py). Nothing here
does I/O; reconcile/publish.py writes what these compute."""
