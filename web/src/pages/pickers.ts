// The unit selector of the feedback and archive pages: the group's members.

import type { App } from "../app.js";
import { h } from "../dom.js";
import { t } from "../i18n.js";

export async function unitPicker(app: App, selected: string, onPick: (unit: string) => void): Promise<HTMLElement> {
  await app.units().catch(() => undefined);
  const members = app.groups.find((g) => g.name === app.group)?.units ?? [];
  const options = members.includes(selected) || !selected ? members : [selected, ...members];
  const select = h(
    "select",
    { "data-picker": "unit", onchange: (e: Event) => onPick((e.target as HTMLSelectElement).value) },
    selected ? null : h("option", { value: "" }, "—"),
    options.map((u) => h("option", { value: u, selected: u === selected }, app.unitLabel(u))),
  );
  return h("label", { class: "picker no-print" }, `${t("unit")} `, select);
}
