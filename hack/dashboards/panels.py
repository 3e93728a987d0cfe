"""Small constructors around grafana-foundation-sdk builders: one datasource, one look, stable ids.

Every query goes through `PanelSet.query` so the set of expressions a dashboard uses can be listed
without walking the built JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    VariableHide,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")


@dataclass
class PanelSet:
    """Hands out panel ids and remembers every (panel title, expr) pair it built."""

    exprs: list[tuple[str, str]] = field(default_factory=list)
    _next_id: int = 1

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def query(self, panel: str, expr: str, legend: str, ref: str, *, fmt: str = "") -> prometheus.Dataquery:
        self.exprs.append((panel, expr))
        q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
        if fmt == "heatmap":
            q = q.format(PromQueryFormat.HEATMAP)
        return q

    def timeseries(
        self,
        title: str,
        description: str,
        unit: str,
        targets: list[tuple[str, str]],
        *,
        width: int = 12,
        height: int = 8,
    ) -> timeseries.Panel:
        """A line chart; `targets` is [(expr, legend)]."""
        panel = (
            timeseries.Panel()
            .id(self.next_id())
            .title(title)
            .description(description)
            .datasource(DATASOURCE)
            .unit(unit)
            .span(width)
            .height(height)
            .legend(
                common_builders.VizLegendOptions()
                .display_mode(common.LegendDisplayMode.TABLE)
                .placement(common.LegendPlacement.BOTTOM)
                .show_legend(True)
                .calcs(["mean", "max", "lastNotNull"])
            )
            .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
        )
        for i, (expr, legend) in enumerate(targets):
            panel = panel.with_target(self.query(title, expr, legend, chr(ord("A") + i)))
        return panel

    def row(self, title: str) -> dashboard.Row:
        return dashboard.Row(title).id(self.next_id())

    def stat(self, title: str, description: str, unit: str, expr: str, *, width: int = 6) -> stat.Panel:
        return (
            stat.Panel()
            .id(self.next_id())
            .title(title)
            .description(description)
            .datasource(DATASOURCE)
            .unit(unit)
            .span(width)
            .height(4)
            .with_target(self.query(title, expr, "", "A"))
        )

    def heatmap(self, title: str, description: str, expr: str, *, width: int = 24) -> heatmap.Panel:
        """A heatmap of histogram buckets as Prometheus returns them (no Grafana-side bucketing)."""
        return (
            heatmap.Panel()
            .id(self.next_id())
            .title(title)
            .description(description)
            .datasource(DATASOURCE)
            .span(width)
            .height(9)
            .calculate(False)
            .y_axis(heatmap.YAxisConfig().unit("s"))
            .with_target(self.query(title, expr, "{{le}}", "A", fmt="heatmap"))
        )


def datasource_variable() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")


def query_variable(name: str, label: str, query: str) -> dashboard.QueryVariable:
    """A multi-select label variable with All (matching any value, including none yet seen)."""
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(selected=True, text="All", value="$__all"))
        .hide(VariableHide.DONT_HIDE)
    )
