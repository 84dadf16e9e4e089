"""The operator's one vocabulary: names, condition types and reasons, dependencies, time and
duration formats, digests, domains and the hints that go with reasons. Everything above
imports its words from here; nothing here imports anything of the operator's."""
