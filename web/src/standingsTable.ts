// The ranked table of a group (DOMAIN.md §9's columns, as `jixiao standings`
// prints them), kept in the DOM and updated in place: a change touches only
// the cells whose text changed, and rows move only when the order changed.

import { Component, type StandingRow } from "./gen/jixiao/aggregator/v1/aggregator_pb.js";
import { dec, h } from "./dom.js";
import { t, type Key } from "./i18n.js";

export const COLUMNS = [
  "rank",
  "unit",
  "name",
  "indicator",
  "survey",
  "online",
  "mutual",
  "review",
  "deductions",
  "credits",
  "adjustment",
  "composite",
  "flags",
] as const;

export type Col = (typeof COLUMNS)[number];

const NUMERIC = new Set<Col>([
  "indicator",
  "survey",
  "online",
  "mutual",
  "review",
  "deductions",
  "credits",
  "adjustment",
  "composite",
]);

/** From this many rows on, the table has a fixed layout (style.css). */
const LARGE = 300;

/** The component names as `MISSING_…` codes, as the CLI prints them. */
function componentCode(c: Component): string {
  return (Component[c] ?? String(c)).replace(/^COMPONENT_/, "");
}

/** One row's cells as text, exactly as `jixiao standings --json` gives them. */
export function cellValues(r: StandingRow): Record<Col, string> {
  const flags = [...r.missing.map((c) => `MISSING_${componentCode(c)}`), ...r.flags];
  return {
    rank: r.rank > 0 ? String(r.rank) : "-",
    unit: r.unit.replace(/^units\//, ""),
    name: r.unitDisplayName,
    indicator: dec(r.indicator),
    survey: dec(r.survey),
    online: dec(r.online),
    mutual: dec(r.mutual),
    review: dec(r.reviewTotal),
    deductions: dec(r.deductions),
    credits: dec(r.credits),
    adjustment: dec(r.adjustment),
    composite: dec(r.composite),
    flags: flags.join(" "),
  };
}

interface Row {
  tr: HTMLTableRowElement;
  cells: Record<Col, HTMLTableCellElement>;
  values: Record<Col, string>;
}

/** Names shown for a unit other than the row's own (English names). */
export type NameOf = (unit: string, fallback: string) => string;

export class StandingsTable {
  readonly el: HTMLTableElement;
  private readonly body: HTMLTableSectionElement;
  private readonly rows = new Map<string, Row>();
  private order: string[] = [];

  constructor(private readonly nameOf: NameOf = (_, f) => f) {
    this.body = h("tbody");
    this.el = h(
      "table",
      { class: "standings", "data-table": "standings" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          COLUMNS.map((c) => h("th", { scope: "col", class: NUMERIC.has(c) ? "num" : "" }, t(`col_${c}` as Key))),
        ),
      ),
      this.body,
    );
  }

  /**
   * Shows `rows`; returns how many cells changed. With `flash`, changed
   * cells are highlighted for a moment (left out when most of the table
   * changed: the highlight would then only cost time).
   */
  update(rows: StandingRow[], flash = true): number {
    const seen = new Set<string>();
    const changed: HTMLTableCellElement[] = [];
    const order: string[] = [];
    for (const r of rows) {
      const values = cellValues(r);
      order.push(r.unit);
      seen.add(r.unit);
      const existing = this.rows.get(r.unit);
      if (!existing) {
        this.rows.set(r.unit, this.makeRow(r.unit, values));
        continue;
      }
      for (const c of COLUMNS) {
        if (existing.values[c] !== values[c]) {
          this.fill(existing.cells[c], c, values[c], r.unit);
          changed.push(existing.cells[c]);
        }
      }
      existing.values = values;
      existing.tr.classList.toggle("incomplete", values.rank === "-");
    }
    for (const [unit, row] of this.rows) {
      if (!seen.has(unit)) {
        row.tr.remove();
        this.rows.delete(unit);
      }
    }
    this.el.classList.toggle("large", order.length > LARGE);
    if (!sameOrder(order, this.order)) {
      // Move only the rows that are out of place.
      let cursor = this.body.firstChild;
      for (const unit of order) {
        const tr = this.rows.get(unit)!.tr;
        if (tr === cursor) cursor = cursor.nextSibling;
        else this.body.insertBefore(tr, cursor);
      }
      this.order = order;
    }
    if (flash && changed.length > 0 && changed.length <= 200) {
      for (const cell of changed) {
        cell.animate([{ backgroundColor: "#ffe58a" }, { backgroundColor: "transparent" }], {
          duration: 1600,
          easing: "ease-out",
        });
      }
    }
    return changed.length;
  }

  /** The table as CSV rows, header first, in the current language. */
  csv(): string[][] {
    const head = COLUMNS.map((c) => t(`col_${c}` as Key));
    return [head, ...this.order.map((u) => COLUMNS.map((c) => this.rows.get(u)!.values[c]))];
  }

  get size(): number {
    return this.order.length;
  }

  private makeRow(unit: string, values: Record<Col, string>): Row {
    const cells = {} as Record<Col, HTMLTableCellElement>;
    const tr = h("tr", { "data-unit": values.unit, class: values.rank === "-" ? "incomplete" : "" });
    for (const c of COLUMNS) {
      const td = h("td", {
        "data-col": c,
        "data-unit": values.unit,
        class: NUMERIC.has(c) ? "num" : c,
      });
      this.fill(td, c, values[c], unit);
      cells[c] = td;
      tr.appendChild(td);
    }
    return { tr, cells, values };
  }

  private fill(td: HTMLTableCellElement, c: Col, value: string, unit: string): void {
    if (c === "flags") {
      td.replaceChildren(
        ...value
          .split(" ")
          .filter(Boolean)
          .flatMap((f, i) => [i > 0 ? " " : "", h("span", { class: "flag", title: flagTitle(f) }, f)]),
      );
    } else if (c === "name") {
      td.textContent = this.nameOf(unit, value);
    } else {
      td.textContent = value;
    }
  }
}

function flagTitle(flag: string): string {
  const m = /^MISSING_(\w+)$/.exec(flag);
  if (m) {
    const key = `comp_${m[1].toLowerCase()}` as Key;
    return `${t("col_flags")}: ${t(key)} −`;
  }
  return flag;
}

function sameOrder(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
