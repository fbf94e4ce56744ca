// Small DOM helpers, CSV export and figures as the suite sends them.

import type { Decimal } from "./gen/google/type/decimal_pb.js";
import { t, type Key } from "./i18n.js";
import type { Failure } from "./api.js";

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>;

/** `h("td", { class: "num" }, "84.475")`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") el.addEventListener(name.replace(/^on/, ""), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el: Element, children: (Child | Child[])[]): void {
  for (const c of children) {
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else if (c !== null && c !== undefined && c !== false) el.appendChild(document.createTextNode(String(c)));
  }
}

/** A decimal as the suite sends it (exact, 3 decimals); `-` when missing, as the CLI prints. */
export function dec(d: Decimal | undefined): string {
  return d && d.value !== "" ? d.value : "-";
}

/** A decimal as a number for charts only; never for a figure shown. */
export function num(d: Decimal | undefined): number | null {
  if (!d || d.value === "") return null;
  const n = Number(d.value);
  return Number.isFinite(n) ? n : null;
}

/** A message panel: a refusal, a sign-in prompt, an error, or an empty state. */
export function notice(kind: "info" | "refused" | "error" | "signin", title: string, detail = ""): HTMLElement {
  return h(
    "div",
    { class: `notice notice-${kind}`, role: kind === "info" ? "status" : "alert", "data-notice": kind },
    h("strong", {}, title),
    detail ? h("p", {}, detail) : null,
  );
}

/** A failed call, readable. */
export function failureNotice(f: Failure): HTMLElement {
  switch (f.kind) {
    case "refused":
      return notice("refused", t("refused"), `${t("refused_help")} ${f.message}`);
    case "signin":
      return notice("signin", t("sign_in_title"), f.message);
    case "notfound":
      return notice("error", t("not_found"), f.message);
    case "unavailable":
      return notice("error", t("unavailable"), f.message);
    default:
      return notice("error", t("error"), f.message);
  }
}

/** A table with a header row of dictionary keys; `numeric` columns align right. */
export function table(headKeys: Key[], rows: HTMLTableRowElement[], cls = "", numeric: number[] = []): HTMLTableElement {
  return h(
    "table",
    { class: cls },
    h(
      "thead",
      {},
      h("tr", {}, headKeys.map((k, i) => h("th", { scope: "col", class: numeric.includes(i) ? "num" : "" }, t(k)))),
    ),
    h("tbody", {}, rows),
  );
}

/** A CSV file that Excel opens as UTF-8: byte-order mark, CRLF, quoted fields. */
export function downloadCsv(filename: string, rows: string[][]): void {
  const quote = (s: string) => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const text = "\uFEFF" + rows.map((r) => r.map(quote).join(",")).join("\r\n") + "\r\n";
  const blob = new Blob([text], { type: "text/csv;charset=utf-8" });
  const a = h("a", { href: URL.createObjectURL(blob), download: filename });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

/** The id of a resource name's last segment: `units/siming` → `siming`. */
export function lastSegment(name: string): string {
  return name.slice(name.lastIndexOf("/") + 1);
}
