// The published versions of a group: each one's table, digest, decisions
// and correction reason, and a verify action (VerifyPublication recomputes
// the digest and the table from the stored inputs).

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { failure } from "../api.js";
import type { PageCtx } from "../app.js";
import { downloadCsv, failureNotice, h, lastSegment, notice, table } from "../dom.js";
import { Component, type Publication } from "../gen/jixiao/aggregator/v1/aggregator_pb.js";
import { formatTime, t, type Key } from "../i18n.js";
import { StandingsTable } from "../standingsTable.js";

export async function publicationsPage(ctx: PageCtx): Promise<void> {
  const { app, main, params, signal } = ctx;
  const group = app.group;
  const publications: Publication[] = [];
  let pageToken = "";
  do {
    const r = await app.api.aggregator.listPublications({ group, pageSize: 500, pageToken }, { signal });
    publications.push(...r.publications);
    pageToken = r.nextPageToken;
  } while (pageToken);
  const head = h("header", { class: "page-head" }, h("h2", {}, `${app.groupLabel(group)} · ${t("pub_title")}`));
  if (publications.length === 0) {
    main.replaceChildren(h("section", { class: "page", "data-page": "publications" }, head, notice("info", t("pub_none"))));
    return;
  }
  const wanted = Number(params.get("version") ?? publications[0].version);
  const current = publications.find((p) => p.version === wanted) ?? publications[0];
  const when = (p: Publication) => formatTime(p.publishTime ? timestampDate(p.publishTime) : undefined);
  const versions = table(
    ["pub_version", "pub_time", "pub_by", "pub_digest", "pub_correction"],
    publications.map((p) =>
      h(
        "tr",
        { class: p === current ? "selected" : "", "data-version": p.version },
        h(
          "td",
          {},
          h("a", { href: `#/publications?group=${encodeURIComponent(group)}&version=${p.version}` }, t("published_version", { v: p.version })),
        ),
        h("td", {}, when(p)),
        h("td", {}, p.publishedBy),
        h("td", { class: "digest" }, p.digest.slice(0, 16) + "…"),
        h("td", {}, p.correctionReason || "-"),
      ),
    ),
    "versions",
  );
  const rows = new StandingsTable((unit, fallback) => app.unitLabel(unit, fallback));
  rows.update(current.rows, false);
  const result = h("div", { class: "verify-result", "data-verify": "" });
  const verifyButton = h("button", { type: "button", class: "no-print", "data-action": "verify" }, t("verify"));
  verifyButton.addEventListener("click", async () => {
    verifyButton.disabled = true;
    result.dataset.verify = "running";
    result.replaceChildren(t("verifying"));
    try {
      const v = await app.api.aggregator.verifyPublication({ name: current.name }, { signal });
      result.dataset.verify = v.valid ? "valid" : "invalid";
      result.replaceChildren(
        v.valid
          ? h("div", { class: "notice notice-ok", role: "status" }, h("strong", {}, `✓ ${t("verified")}`))
          : notice("error", t("verify_failed"), v.problems.join("; ")),
        h("p", { class: "digest" }, `${t("recomputed")}: ${v.recomputedDigest}`),
      );
    } catch (e) {
      const f = failure(e);
      if (f.kind === "signin") return app.signIn(f.message);
      result.dataset.verify = "error";
      result.replaceChildren(failureNotice(f));
    } finally {
      verifyButton.disabled = false;
    }
  });
  const decisions = current.decisions.length
    ? table(
        ["col_unit", "pub_decision_component", "pub_decision_flag", "pub_decision_reason"],
        current.decisions.map((d) =>
          h(
            "tr",
            {},
            h("td", {}, app.unitLabel(d.unit)),
            h("td", {}, t(`comp_${(Component[d.component] ?? "").toLowerCase()}` as Key)),
            h("td", {}, d.flag || "-"),
            h("td", {}, d.reason),
          ),
        ),
      )
    : h("p", { class: "muted" }, t("none"));
  main.replaceChildren(
    h(
      "section",
      { class: "page", "data-page": "publications" },
      head,
      h("div", { class: "table-wrap no-print" }, versions),
      h(
        "section",
        { class: "card", "data-publication": current.name },
        h(
          "header",
          { class: "page-head" },
          h("h3", {}, h("span", { class: "badge published" }, t("published_version", { v: current.version }))),
          h("span", { class: "meta" }, `${t("pub_time")}: ${when(current)} · ${t("pub_by")}: ${current.publishedBy}`),
        ),
        current.correctionReason ? h("p", {}, h("strong", {}, `${t("pub_correction")}: `), current.correctionReason) : null,
        h("p", { class: "digest" }, `${t("pub_digest")}: `, h("code", { "data-digest": "" }, current.digest)),
        h(
          "div",
          { class: "toolbar" },
          verifyButton,
          h(
            "button",
            {
              type: "button",
              class: "no-print",
              onclick: () => downloadCsv(`${lastSegment(group)}-v${current.version}.csv`, rows.csv()),
            },
            t("export_csv"),
          ),
          h("button", { type: "button", class: "no-print", onclick: () => window.print() }, t("print")),
        ),
        result,
        h("div", { class: "table-wrap" }, rows.el),
        h("h3", {}, t("pub_decisions")),
        decisions,
      ),
    ),
  );
}
