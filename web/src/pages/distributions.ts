// Distribution of each component across the group (GetDistribution).

import type { PageCtx } from "../app.js";
import { dec, h, num, table } from "../dom.js";
import { Component } from "../gen/jixiao/aggregator/v1/aggregator_pb.js";
import { t, type Key } from "../i18n.js";

const COMPONENTS: [Component, Key][] = [
  [Component.INDICATOR, "comp_indicator"],
  [Component.SURVEY, "comp_survey"],
  [Component.ONLINE, "comp_online"],
  [Component.MUTUAL, "comp_mutual"],
  [Component.INSPECTION, "comp_inspection"],
  [Component.COMPOSITE, "comp_composite"],
];

export async function distributionsPage(ctx: PageCtx): Promise<void> {
  const { app, main, signal } = ctx;
  const group = app.group;
  const results = await Promise.all(
    COMPONENTS.map(([component]) => app.api.aggregator.getDistribution({ group, component }, { signal })),
  );
  const rows = results.map((d, i) =>
    h(
      "tr",
      { "data-component": Component[COMPONENTS[i][0]] },
      h("th", { scope: "row" }, t(COMPONENTS[i][1])),
      h("td", { class: "num" }, d.count),
      h("td", { class: "num" }, dec(d.min)),
      h("td", { class: "num" }, dec(d.median)),
      h("td", { class: "num" }, dec(d.mean)),
      h("td", { class: "num" }, dec(d.max)),
    ),
  );
  const chartBox = h("div", { class: "chart", style: "height: 360px" });
  main.replaceChildren(
    h(
      "section",
      { class: "page", "data-page": "distributions" },
      h("header", { class: "page-head" }, h("h2", {}, `${app.groupLabel(group)} · ${t("dist_title")}`)),
      h(
        "div",
        { class: "table-wrap" },
        table(["dist_component", "dist_count", "dist_min", "dist_median", "dist_mean", "dist_max"], rows, "", [1, 2, 3, 4, 5]),
      ),
      chartBox,
    ),
  );
  const charts = await import("../charts.js");
  if (signal.aborted) return;
  const c = charts.chart(chartBox);
  signal.addEventListener("abort", () => c.dispose());
  // Every component but the composite shares one scale (0..60 and −5..0).
  const shown = results.slice(0, 5);
  c.set(
    charts.groupedBars(
      COMPONENTS.slice(0, 5).map(([, k]) => t(k)),
      [
        { name: t("dist_min"), values: shown.map((d) => num(d.min)) },
        { name: t("dist_median"), values: shown.map((d) => num(d.median)) },
        { name: t("dist_mean"), values: shown.map((d) => num(d.mean)) },
        { name: t("dist_max"), values: shown.map((d) => num(d.max)) },
      ],
    ),
  );
}
