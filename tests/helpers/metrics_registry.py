"""What the operator's metrics registry can expose, by name, for tests that check names
used in alerts, dashboards and docs against the code."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.metrics import MetricWrapperBase

from lark_operator import metrics

SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


@dataclass(frozen=True)
class Family:
    name: str  # as documented: lark_service_api_calls_total, lark_service_probe_up, ...
    type: str
    help: str
    labels: tuple[str, ...]
    series_names: tuple[str, ...]  # every name a sample of it can carry on /metrics


OWN_PREFIX = "lark_service_"


def families(own: bool = True) -> dict[str, Family]:
    """Documented name -> family: the operator's own `lark_service_*` metrics, or with
    own=False the process/Python runtime metrics the registry also carries. Labelled
    metrics without children expose no samples, so the names are derived from each
    family's name and type, not from samples."""
    labels = {
        obj._name: tuple(obj._labelnames)  # prometheus_client has no public label-name API
        for obj in vars(metrics).values()
        if isinstance(obj, MetricWrapperBase)
    }
    # Per-LarkApp families are rendered at scrape time from plain values (metrics.py).
    labels.update({n: lbl for n, (_, lbl) in metrics.PER_LARKAPP.items()})
    out: dict[str, Family] = {}
    for fam in metrics.REGISTRY.collect():
        if fam.name.startswith(OWN_PREFIX) != own:
            continue
        if fam.name not in labels:  # a collector's family: its samples carry the labels
            labels[fam.name] = tuple(sorted({k for s in fam.samples for k in s.labels}))
        names = tuple(fam.name + s for s in SUFFIXES[fam.type])
        documented = fam.name + "_total" if fam.type == "counter" else fam.name
        out[documented] = Family(
            documented, fam.type, fam.documentation, labels.get(fam.name, ()), names
        )
    return out


def series_names() -> dict[str, str]:
    """Every name a series of the registry can have, and every documented family name
    (a histogram is documented by its base name) -> the documented family name."""
    every = [*families().values(), *families(own=False).values()]
    out = {n: f.name for f in every for n in f.series_names}
    out.update({f.name: f.name for f in every})  # histograms by family name
    return out
