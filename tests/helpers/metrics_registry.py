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


def families() -> dict[str, Family]:
    """Documented name -> family. Labelled metrics without children expose no samples,
    so the names are derived from each family's name and type, not from samples."""
    labels = {
        obj._name: tuple(obj._labelnames)  # prometheus_client has no public label-name API
        for obj in vars(metrics).values()
        if isinstance(obj, MetricWrapperBase)
    }
    out: dict[str, Family] = {}
    for fam in metrics.REGISTRY.collect():
        names = tuple(fam.name + s for s in SUFFIXES[fam.type])
        documented = fam.name + "_total" if fam.type == "counter" else fam.name
        out[documented] = Family(
            documented, fam.type, fam.documentation, labels.get(fam.name, ()), names
        )
    return out


def series_names() -> dict[str, str]:
    """Every name a series of the registry can have, and every documented family name
    (a histogram is documented by its base name) -> the documented family name."""
    out = {n: f.name for f in families().values() for n in f.series_names}
    out.update({f.name: f.name for f in families().values()})  # histograms by family name
    return out
