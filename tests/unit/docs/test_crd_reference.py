"""docs/crd-reference.md is generated from the CRD; a stale copy fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_crd_reference_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("gen", REPO / "hack" / "gen_crd_reference.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    committed = (REPO / "docs" / "crd-reference.md").read_text()
    assert committed == gen.render(), "docs/crd-reference.md is stale: run `make docs`"


def test_reference_names_every_spec_field() -> None:
    text = (REPO / "docs" / "crd-reference.md").read_text()
    for field in (
        "spec.appId",
        "spec.refresh.renewBefore",
        "spec.target.deletionPolicy",
        "spec.probes.rabbitmq.queues[].maxReady",
        "status.token.fingerprint",
    ):
        assert f"`{field}`" in text
