"""docs/grafana-dashboard.json against amidcc.gateway.metrics: every metric a query names exists
(with the suffix its type exposes), every label it groups by is one of that metric's labels, every
amidcc_ family is on the dashboard, and the document is well formed (unique ids, grid, data source)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from amidcc.gateway.metrics import GatewayMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"

#: Sample-name suffixes each metric type exposes (prometheus_client, text format).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}
#: Labels Prometheus adds at scrape time.
TARGET_LABELS = {"instance", "job"}

METRIC = re.compile(r"\bamidcc_[a-z0-9_]+")
GROUPING = re.compile(r"\b(?:by|on|without|group_left|group_right)\s*\(([^)]*)\)")
LABEL_VALUES = re.compile(r"label_values\((amidcc_[a-z0-9_]+),\s*([a-z_]+)\)")


def _families() -> dict[str, tuple[str, set[str]]]:
    """Exposed sample name -> (family name, its label names)."""
    metrics = GatewayMetrics(process=False)
    # label names as declared (prometheus_client keeps them on the metric object; a family without
    # children has no samples to read them from)
    declared = {
        getattr(m, "_name", ""): set(getattr(m, "_labelnames", ()))
        for m in vars(metrics).values()
        if hasattr(m, "_labelnames")
    }
    exposed: dict[str, tuple[str, set[str]]] = {}
    for family in metrics.registry.collect():
        if not family.name.startswith("amidcc_"):
            continue
        labels = set(declared.get(family.name, ()))
        for sample in family.samples:
            labels.update(sample.labels)
        labels.discard("le")
        for suffix in SUFFIXES[family.type]:
            exposed[family.name + suffix] = (family.name, labels)
    return exposed


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in doc["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _queries(doc: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in _panels(doc) for t in p.get("targets", [])]
    exprs += [v["definition"] for v in doc["templating"]["list"] if "definition" in v]
    return exprs


def test_every_metric_on_the_dashboard_exists() -> None:
    exposed = _families()
    named = {m for expr in _queries(_dashboard()) for m in METRIC.findall(expr)}
    assert named, "no amidcc_ metric found in the dashboard"
    assert named - set(exposed) == set()


def test_every_amidcc_family_is_on_the_dashboard() -> None:
    exposed = _families()
    shown = {exposed[m][0] for expr in _queries(_dashboard()) for m in METRIC.findall(expr)}
    assert {family for family, _ in exposed.values()} - shown == set()


@pytest.mark.parametrize("expr", _queries(_dashboard()))
def test_grouping_labels_exist(expr: str) -> None:
    exposed = _families()
    labels = set(TARGET_LABELS)
    for name in METRIC.findall(expr):
        labels |= exposed[name][1]
        if name.endswith("_bucket"):
            labels.add("le")
    for group in GROUPING.findall(expr):
        used = {part.strip() for part in group.split(",") if part.strip()}
        assert used <= labels, f"{expr}: no label {used - labels}"
    for name, label in LABEL_VALUES.findall(expr):
        assert label in exposed[name][1] | TARGET_LABELS


def test_label_selectors_use_real_labels() -> None:
    exposed = _families()
    selector = re.compile(r"(amidcc_[a-z0-9_]+)\{([^}]*)\}")
    for expr in _queries(_dashboard()):
        for name, body in selector.findall(expr):
            used = {m.split("=")[0].strip().rstrip("!~") for m in body.split(",") if m.strip()}
            assert used <= exposed[name][1] | TARGET_LABELS, f"{expr}: {used}"


def test_dashboard_is_well_formed() -> None:
    doc = _dashboard()
    panels = _panels(doc)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    assert doc["uid"] == "amidcc-gateway" and isinstance(doc["schemaVersion"], int)
    variables = {v["name"] for v in doc["templating"]["list"]}
    assert {"datasource", "instance", "link"} <= variables
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"] and all(t["refId"] for t in panel["targets"])
    titles = " ".join(p["title"].lower() for p in panels)
    for needed in ("messages", "bytes", "errors", "p50", "p99", "registered", "reachable",
                   "read success", "events by class"):  # fmt: skip
        assert needed in titles, needed
