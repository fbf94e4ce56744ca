// A unit's feedback (结果反馈): where its points went, what reviewers said,
// findings, credits, what to rectify and timeliness — what it reads to do
// better next year. A unit's token reads only its own (the RPC decides).

import { failure } from "../api.js";
import type { PageCtx } from "../app.js";
import { dec, failureNotice, h, num, table } from "../dom.js";
import { t, type Key } from "../i18n.js";
import { unitPicker } from "./pickers.js";

export async function feedbackPage(ctx: PageCtx): Promise<void> {
  const { app, main, params, signal } = ctx;
  const group = app.group;
  const unit = params.get("unit") ?? (app.claims.unit ? `units/${app.claims.unit}` : "");
  const body = h("div", { "data-feedback": "" });
  const picker = await unitPicker(app, unit, (u) => app.go("feedback", { group, unit: u }));
  main.replaceChildren(
    h(
      "section",
      { class: "page", "data-page": "feedback" },
      h(
        "header",
        { class: "page-head" },
        h("h2", {}, t("fb_title", { unit: unit ? app.unitLabel(unit) : "" })),
        picker,
      ),
      body,
    ),
  );
  if (!unit) return;
  let fb;
  try {
    fb = await app.api.aggregator.getFeedback({ group, unit }, { signal });
  } catch (e) {
    const f = failure(e);
    if (f.kind === "signin") return app.signIn(f.message);
    body.replaceChildren(failureNotice(f));
    return;
  }
  const r = fb.row;
  const list = (key: Key, items: string[]) =>
    h(
      "section",
      { class: "card" },
      h("h3", {}, t(key)),
      items.length ? h("ul", {}, items.map((i) => h("li", {}, i))) : h("p", { class: "muted" }, t("none")),
    );
  const figure = (key: Key, value: string) => h("div", { class: "figure" }, h("span", {}, t(key)), h("strong", {}, value));
  const losses = table(
    ["fb_indicator", "fb_weight", "fb_points", "fb_lost"],
    fb.losses.map((l) =>
      h(
        "tr",
        {},
        h("td", {}, l.indicator),
        h("td", { class: "num" }, dec(l.weight)),
        h("td", { class: "num" }, dec(l.points)),
        h("td", { class: "num lost" }, dec(l.pointsLost)),
      ),
    ),
    "",
    [1, 2, 3],
  );
  const chartBox = h("div", { class: "chart", style: `height: ${Math.max(160, fb.losses.length * 28 + 60)}px` });
  body.replaceChildren(
    h(
      "p",
      {},
      h(
        "span",
        { class: `badge ${fb.published ? "published" : "provisional"}` },
        t(fb.published ? "fb_basis_published" : "fb_basis_provisional"),
      ),
    ),
    ...(r
      ? [h(
          "div",
          { class: "figures" },
          figure("col_rank", r.rank > 0 ? String(r.rank) : "-"),
          figure("col_composite", dec(r.composite)),
          figure("col_indicator", dec(r.indicator)),
          figure("col_survey", dec(r.survey)),
          figure("col_online", dec(r.online)),
          figure("col_mutual", dec(r.mutual)),
          figure("col_adjustment", dec(r.adjustment)),
          figure("fb_change", fb.changeFromLastYear ? dec(fb.changeFromLastYear) : t("fb_no_change")),
        )]
      : []),
    h("section", { class: "card" }, h("h3", {}, t("fb_losses")), h("div", { class: "table-wrap" }, losses), chartBox),
    h(
      "div",
      { class: "cards" },
      list("fb_review", fb.reviewDetails),
      list("fb_findings", fb.findings),
      list("fb_credits", fb.credits),
      list("fb_rectify", fb.toRectify),
      list("fb_timeliness", fb.timelinessProblems),
    ),
  );
  if (fb.losses.length === 0) return;
  const charts = await import("../charts.js");
  if (signal.aborted) return;
  const c = charts.chart(chartBox);
  signal.addEventListener("abort", () => c.dispose());
  c.set(
    charts.stackedBars(
      fb.losses.map((l) => l.indicator),
      [
        { name: t("fb_points"), values: fb.losses.map((l) => num(l.points)) },
        { name: t("fb_lost"), values: fb.losses.map((l) => num(l.pointsLost)) },
      ],
    ),
  );
}
