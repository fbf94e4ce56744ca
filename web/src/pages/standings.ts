// Live standings of a group: WatchStandings keeps the table current in
// place; a stacked bar of each unit's components; a stale banner; the
// provisional table told apart from the published versions.

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { failure, isAbort } from "../api.js";
import { probe, type PageCtx } from "../app.js";
import { downloadCsv, failureNotice, h, lastSegment, num } from "../dom.js";
import type { Standings, StandingRow } from "../gen/jixiao/aggregator/v1/aggregator_pb.js";
import { formatTime, t } from "../i18n.js";
import { StandingsTable } from "../standingsTable.js";

/** Units drawn in the chart at most (the table always has every row). */
const CHART_ROWS = 60;
/** The chart is redrawn at most this often (ms); the table at every change. */
const CHART_EVERY = 1000;

export async function standingsPage(ctx: PageCtx): Promise<void> {
  const { app, main, signal } = ctx;
  const group = app.group;
  const table = new StandingsTable((unit, fallback) => app.unitLabel(unit, fallback));
  const banner = h("div", { class: "banner stale", role: "alert", hidden: true, "data-stale": "" });
  const status = h("span", { class: "live", "data-live": "connecting" }, t("loading"));
  const revision = h("span", { class: "meta", "data-revision": "" });
  const publication = h("span", { class: "meta" });
  const error = h("div");
  const chartBox = h("div", { class: "chart", "data-chart": "components" });
  const chartTitle = h("h3", { class: "no-print" }, t("chart_components"));
  const csvButton = h(
    "button",
    {
      type: "button",
      class: "no-print",
      onclick: () => downloadCsv(`standings-${lastSegment(group)}.csv`, table.csv()),
    },
    t("export_csv"),
  );
  main.replaceChildren(
    h(
      "section",
      { class: "page standings-page", "data-page": "standings" },
      h(
        "header",
        { class: "page-head" },
        h("h2", {}, app.groupLabel(group)),
        h("span", { class: "badge provisional", title: t("provisional_help") }, t("provisional")),
        publication,
      ),
      banner,
      error,
      h(
        "div",
        { class: "toolbar" },
        status,
        revision,
        h("span", { class: "spacer" }),
        csvButton,
        h("button", { type: "button", class: "no-print", onclick: () => window.print() }, t("print")),
      ),
      h("div", { class: "table-wrap" }, table.el),
      h("p", { class: "print-only meta" }, `${t("provisional")} · ${t("provisional_help")}`),
      chartTitle,
      chartBox,
    ),
  );

  // The latest publication, to tell it apart from the provisional table.
  app.api.aggregator
    .listPublications({ group, pageSize: 1 }, { signal })
    .then((r) => {
      const p = r.publications[0];
      publication.replaceChildren(
        p
          ? h(
              "a",
              { class: "badge published", href: `#/publications?group=${encodeURIComponent(group)}` },
              t("latest_publication", {
                v: p.version,
                time: formatTime(p.publishTime ? timestampDate(p.publishTime) : undefined),
              }),
            )
          : h("span", { class: "badge muted" }, t("no_publication")),
      );
    })
    .catch(() => publication.replaceChildren());

  let chart: import("../charts.js").Chart | undefined;
  let chartRows: StandingRow[] | undefined;
  let chartTimer: number | undefined;
  let lastChart = 0;
  const drawChart = async () => {
    chartTimer = undefined;
    if (!chartRows || signal.aborted) return;
    const charts = await import("../charts.js");
    if (signal.aborted) return;
    const rows = chartRows.slice(0, CHART_ROWS);
    chartBox.style.height = `${Math.max(160, rows.length * 26 + 60)}px`;
    chart ??= charts.chart(chartBox);
    chartTitle.textContent =
      t("chart_components") + (chartRows.length > CHART_ROWS ? t("chart_top", { n: CHART_ROWS }) : "");
    const pick = (f: (r: StandingRow) => number | null) => rows.map(f);
    chart.set(
      charts.stackedBars(
        rows.map((r) => app.unitLabel(r.unit, r.unitDisplayName)),
        [
          { name: t("comp_indicator"), values: pick((r) => num(r.indicator)) },
          { name: t("comp_survey"), values: pick((r) => num(r.survey)) },
          { name: t("comp_online"), values: pick((r) => num(r.online)) },
          { name: t("comp_mutual"), values: pick((r) => num(r.mutual)) },
          { name: t("comp_inspection"), values: pick((r) => num(r.adjustment)) },
        ],
      ),
    );
    lastChart = performance.now();
  };
  const scheduleChart = (rows: StandingRow[]) => {
    chartRows = rows;
    if (chartTimer !== undefined) return;
    const wait = Math.max(0, lastChart + CHART_EVERY - performance.now());
    chartTimer = window.setTimeout(drawChart, wait);
  };
  signal.addEventListener("abort", () => {
    if (chartTimer !== undefined) clearTimeout(chartTimer);
    chart?.dispose();
  });

  const show = (s: Standings) => {
    const received = performance.now();
    const cells = table.update(s.rows);
    const updated = s.updateTime ? timestampDate(s.updateTime) : undefined;
    revision.textContent = `${t("revision", { n: String(s.revision) })} · ${t("updated", { time: formatTime(updated) })}`;
    revision.dataset.revision = String(s.revision);
    banner.hidden = !s.stale;
    banner.textContent = s.stale ? `⚠ ${t("stale", { time: formatTime(updated), reason: s.staleReason })}` : "";
    const p = probe();
    const entry = { revision: String(s.revision), received, applied: performance.now(), cells } as Probe["updates"][0];
    p.updates.push(entry);
    if (p.updates.length > 1000) p.updates.splice(0, p.updates.length - 1000);
    p.firstRender ??= entry.applied;
    // The frame that shows the change: after its style, layout and paint.
    requestAnimationFrame(() => setTimeout(() => (entry.frame = performance.now()), 0));
    scheduleChart(s.rows);
  };

  // Follow the stream; reconnect with a growing pause when it breaks.
  let pause = 500;
  while (!signal.aborted) {
    try {
      for await (const s of app.api.aggregator.watchStandings({ group }, { signal })) {
        status.textContent = `● ${t("live")}`;
        status.dataset.live = "open";
        error.replaceChildren();
        pause = 500;
        show(s);
      }
    } catch (e) {
      if (signal.aborted || isAbort(e)) return;
      const f = failure(e);
      if (f.kind === "signin") return app.signIn(f.message);
      if (f.kind === "refused" || f.kind === "notfound") {
        status.textContent = "";
        error.replaceChildren(failureNotice(f));
        return;
      }
      error.replaceChildren(failureNotice(f));
    }
    if (signal.aborted) return;
    status.textContent = t("reconnecting");
    status.dataset.live = "reconnecting";
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(pause * 2, 10_000);
  }
}

type Probe = ReturnType<typeof probe>;
