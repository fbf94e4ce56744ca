// A unit's published results across cycles (绩效档案) as a line chart.

import { failure } from "../api.js";
import type { PageCtx } from "../app.js";
import { dec, failureNotice, h, lastSegment, notice, num, table } from "../dom.js";
import { t } from "../i18n.js";
import { unitPicker } from "./pickers.js";

export async function archivePage(ctx: PageCtx): Promise<void> {
  const { app, main, params, signal } = ctx;
  const group = app.group;
  const unit =
    params.get("unit") ??
    (app.claims.unit ? `units/${app.claims.unit}` : (app.groups.find((g) => g.name === group)?.units[0] ?? ""));
  const body = h("div");
  const picker = await unitPicker(app, unit, (u) => app.go("archive", { group, unit: u }));
  main.replaceChildren(
    h(
      "section",
      { class: "page", "data-page": "archive" },
      h(
        "header",
        { class: "page-head" },
        h("h2", {}, t("ar_title", { unit: unit ? app.unitLabel(unit) : "" })),
        picker,
      ),
      body,
    ),
  );
  if (!unit) return;
  let archive;
  try {
    archive = await app.api.aggregator.getArchive({ unit }, { signal });
  } catch (e) {
    const f = failure(e);
    if (f.kind === "signin") return app.signIn(f.message);
    body.replaceChildren(failureNotice(f));
    return;
  }
  if (archive.entries.length === 0) {
    body.replaceChildren(notice("info", t("ar_none")));
    return;
  }
  const chartBox = h("div", { class: "chart", style: "height: 320px", "data-chart": "archive" });
  body.replaceChildren(
    chartBox,
    h(
      "div",
      { class: "table-wrap" },
      table(
        ["ar_cycle", "group", "ar_rank", "ar_composite", "pub_version"],
        archive.entries.map((e) =>
          h(
            "tr",
            {},
            h("td", {}, lastSegment(e.cycle)),
            h("td", {}, app.groupLabel(e.group)),
            h("td", { class: "num" }, e.row && e.row.rank > 0 ? e.row.rank : "-"),
            h("td", { class: "num" }, dec(e.row?.composite)),
            h("td", {}, h("a", { href: `#/publications?group=${encodeURIComponent(e.group)}&version=${lastSegment(e.publication)}` }, e.publication)),
          ),
        ),
        "",
        [2, 3],
      ),
    ),
  );
  const charts = await import("../charts.js");
  if (signal.aborted) return;
  const c = charts.chart(chartBox);
  signal.addEventListener("abort", () => c.dispose());
  c.set(
    charts.archiveLines(
      archive.entries.map((e) => lastSegment(e.cycle)),
      { name: t("ar_composite"), values: archive.entries.map((e) => num(e.row?.composite)) },
      { name: t("ar_rank"), values: archive.entries.map((e) => (e.row && e.row.rank > 0 ? e.row.rank : null)) },
    ),
  );
}
