// Audit: a resource's history in one service's trail (ListAuditRecords),
// and every service's hash chain walked (VerifyAuditChain).

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { failure, type Api } from "../api.js";
import type { PageCtx } from "../app.js";
import { failureNotice, h, notice, table } from "../dom.js";
import type {
  ListAuditRecordsRequestSchema,
  ListAuditRecordsResponse,
  VerifyAuditChainResponse,
} from "../gen/jixiao/type/v1/types_pb.js";
import { formatTime, t, type Key } from "../i18n.js";
import type { MessageInitShape } from "@bufbuild/protobuf";

type ServiceName = keyof Api;
const SERVICES: ServiceName[] = ["plans", "indicators", "reviews", "inspections", "aggregator"];

interface AuditClient {
  listAuditRecords(r: MessageInitShape<typeof ListAuditRecordsRequestSchema>, o: { signal: AbortSignal }): Promise<ListAuditRecordsResponse>;
  verifyAuditChain(r: object, o: { signal: AbortSignal }): Promise<VerifyAuditChainResponse>;
}

function client(api: Api, s: ServiceName): AuditClient {
  return api[s] as unknown as AuditClient;
}

export async function auditPage(ctx: PageCtx): Promise<void> {
  const { app, main, params, signal } = ctx;
  const service = (SERVICES as string[]).includes(params.get("service") ?? "")
    ? (params.get("service") as ServiceName)
    : "aggregator";
  const prefix = params.get("resource") ?? app.group;
  const input = h("input", { type: "text", name: "resource", value: prefix, size: 40 });
  const select = h(
    "select",
    { name: "service" },
    SERVICES.map((s) => h("option", { value: s, selected: s === service }, t(`svc_${s}` as Key))),
  );
  const form = h(
    "form",
    { class: "toolbar no-print" },
    h("label", {}, `${t("au_service")} `, select),
    h("label", {}, `${t("au_prefix")} `, input),
    h("button", { type: "submit" }, t("au_show")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    app.go("audit", { group: app.group, service: select.value, resource: input.value.trim() });
  });
  const records = h("div", { "data-audit": "records" });
  const chains = h("div", { "data-audit": "chains" });
  main.replaceChildren(
    h(
      "section",
      { class: "page", "data-page": "audit" },
      h("header", { class: "page-head" }, h("h2", {}, t("au_title"))),
      form,
      records,
      h("h3", {}, t("au_chains")),
      chains,
    ),
  );

  // The records, a page at a time.
  const rows: HTMLTableRowElement[] = [];
  const body = table(["au_seq", "au_time", "au_principal", "au_action", "au_resource", "au_reason", "au_digest"], rows, "audit");
  const more = h("button", { type: "button", class: "no-print" }, t("au_more"));
  let pageToken = "";
  const load = async () => {
    const r = await client(app.api, service).listAuditRecords({ resourcePrefix: prefix, pageSize: 100, pageToken }, { signal });
    for (const a of r.records) {
      body.tBodies[0].appendChild(
        h(
          "tr",
          {},
          h("td", { class: "num" }, String(a.sequence)),
          h("td", {}, formatTime(a.time ? timestampDate(a.time) : undefined)),
          h("td", {}, a.principal),
          h("td", {}, a.action),
          h("td", {}, a.resource),
          h("td", {}, a.reason || "-"),
          h("td", { class: "digest", title: a.digest }, a.digest.slice(0, 12) + "…"),
        ),
      );
    }
    pageToken = r.nextPageToken;
    more.hidden = !pageToken;
    if (body.tBodies[0].rows.length === 0) records.replaceChildren(notice("info", t("au_none")));
  };
  more.addEventListener("click", () => void load().catch(show));
  const show = (e: unknown) => {
    const f = failure(e);
    if (f.kind === "signin") return app.signIn(f.message);
    records.replaceChildren(failureNotice(f));
  };
  records.replaceChildren(h("div", { class: "table-wrap" }, body), more);
  const first = load().catch(show);

  // Every service's chain, side by side.
  const verdicts = await Promise.all(
    SERVICES.map((s) =>
      client(app.api, s)
        .verifyAuditChain({}, { signal })
        .then((v) => ({ s, v }))
        .catch((e: unknown) => ({ s, e })),
    ),
  );
  await first;
  const refused = verdicts.find((x) => "e" in x);
  if (refused && "e" in refused && verdicts.every((x) => "e" in x)) {
    const f = failure(refused.e);
    if (f.kind === "signin") return app.signIn(f.message);
    chains.replaceChildren(failureNotice(f));
    return;
  }
  chains.replaceChildren(
    h(
      "div",
      { class: "table-wrap" },
      table(
        ["au_service", "au_valid", "au_records", "au_head", "au_problem"],
        verdicts.map((x) =>
          "v" in x
            ? h(
                "tr",
                { "data-chain": x.s, "data-valid": String(x.v.valid) },
                h("td", {}, t(`svc_${x.s}` as Key)),
                h("td", { class: x.v.valid ? "ok" : "bad" }, x.v.valid ? `✓ ${t("au_valid")}` : `✗ ${t("au_broken")} #${x.v.firstBrokenSequence}`),
                h("td", { class: "num" }, String(x.v.records)),
                h("td", { class: "digest", title: x.v.headDigest }, x.v.headDigest.slice(0, 16) + "…"),
                h("td", {}, x.v.problem || "-"),
              )
            : h("tr", {}, h("td", {}, t(`svc_${x.s}` as Key)), h("td", { colspan: 4 }, failure(x.e).message)),
        ),
      ),
    ),
  );
}
