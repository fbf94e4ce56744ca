// The dashboard: a header (pages the token's role may read, cycle and group,
// language, who is signed in), and one page at a time, chosen by the URL
// fragment (`#/standings?group=cycles/2026/groups/districts`).

import "./style.css";
import { claims, failure, getToken, grpcWeb, makeApi, setToken, takeTokenFromFragment, type Claims } from "./api.js";
import { hasAny, type App, type PageCtx, type Role } from "./app.js";
import { failureNotice, h, lastSegment, notice } from "./dom.js";
import type { Cycle, Group, Unit } from "./gen/jixiao/plans/v1/plans_pb.js";
import { currentLang, setLang, t, type Key } from "./i18n.js";
import { archivePage } from "./pages/archive.js";
import { auditPage } from "./pages/audit.js";
import { distributionsPage } from "./pages/distributions.js";
import { feedbackPage } from "./pages/feedback.js";
import { publicationsPage } from "./pages/publications.js";
import { standingsPage } from "./pages/standings.js";

interface PageDef {
  key: Key;
  /** Roles the RPCs behind the page answer (shared/runtime/src/authz.rs). */
  roles: Role[];
  render: (ctx: PageCtx) => Promise<void>;
}

const READERS: Role[] = ["office", "evaluator", "unit", "viewer", "service"];
const PAGES: Record<string, PageDef> = {
  standings: { key: "nav_standings", roles: ["office", "evaluator", "viewer", "service"], render: standingsPage },
  distributions: { key: "nav_distributions", roles: ["office", "evaluator", "viewer", "service"], render: distributionsPage },
  feedback: { key: "nav_feedback", roles: READERS, render: feedbackPage },
  publications: { key: "nav_publications", roles: READERS, render: publicationsPage },
  archive: { key: "nav_archive", roles: READERS, render: archivePage },
  audit: { key: "nav_audit", roles: ["office", "evaluator"], render: auditPage },
};

const root = document.getElementById("app")!;
const api = makeApi(grpcWeb());
let cycles: Cycle[] = [];
let groupsByCycle = new Map<string, Group[]>();
let unitsPromise: Promise<Map<string, Unit>> | undefined;
let unitsLoaded = new Map<string, Unit>();
let current: AbortController | undefined;

function parseRoute(): { page: string; params: URLSearchParams } {
  const hash = location.hash.replace(/^#\/?/, "");
  const [page, query] = hash.split("?", 2);
  return { page: page || "", params: new URLSearchParams(query ?? "") };
}

function href(page: string, params: Record<string, string>): string {
  return `#/${page}?${new URLSearchParams(params).toString()}`;
}

/** The sign-in view: why, and a field for a token. */
function signIn(reason: string): void {
  current?.abort();
  const field = h("textarea", { name: "token", rows: 4, cols: 60, autocomplete: "off", spellcheck: "false" });
  const form = h(
    "form",
    { class: "signin", "data-page": "signin" },
    h("h2", {}, t("sign_in_title")),
    notice("signin", reason),
    h("p", {}, t("sign_in_help")),
    h("label", {}, t("token"), h("br"), field),
    h("p", {}, h("button", { type: "submit" }, t("sign_in"))),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    setToken(field.value.trim() || null);
    location.hash = "#/";
    void start();
  });
  root.replaceChildren(
    h("header", { class: "top" }, h("h1", {}, t("title")), h("span", { class: "spacer" }), langButton()),
    h("main", {}, form),
  );
}

function langButton(): HTMLButtonElement {
  return h(
    "button",
    {
      type: "button",
      class: "lang no-print",
      "data-action": "lang",
      onclick: () => {
        setLang(currentLang() === "zh" ? "en" : "zh");
        void start();
      },
    },
    t("switch_lang"),
  );
}

async function loadSetup(): Promise<void> {
  if (cycles.length > 0) return;
  const all: Cycle[] = [];
  let pageToken = "";
  do {
    const r = await api.plans.listCycles({ pageSize: 500, pageToken });
    all.push(...r.cycles);
    pageToken = r.nextPageToken;
  } while (pageToken);
  cycles = all.sort((a, b) => b.year - a.year || a.name.localeCompare(b.name));
}

async function groupsOf(cycle: string): Promise<Group[]> {
  const known = groupsByCycle.get(cycle);
  if (known) return known;
  const all: Group[] = [];
  let pageToken = "";
  do {
    const r = await api.plans.listGroups({ parent: cycle, pageSize: 500, pageToken });
    all.push(...r.groups);
    pageToken = r.nextPageToken;
  } while (pageToken);
  groupsByCycle.set(cycle, all);
  return all;
}

function loadUnits(): Promise<Map<string, Unit>> {
  unitsPromise ??= (async () => {
    const m = new Map<string, Unit>();
    let pageToken = "";
    do {
      const r = await api.plans.listUnits({ pageSize: 1000, pageToken });
      for (const u of r.units) m.set(u.name, u);
      pageToken = r.nextPageToken;
    } while (pageToken);
    unitsLoaded = m;
    return m;
  })();
  return unitsPromise;
}

/** A unit's name: English when asked for and known, else the name the row carries. */
function unitLabel(name: string, fallback?: string): string {
  const u = unitsLoaded.get(name);
  if (currentLang() === "en" && u?.displayNameEn) return u.displayNameEn;
  return fallback || u?.displayNameZh || lastSegment(name);
}

async function start(): Promise<void> {
  current?.abort();
  document.documentElement.lang = currentLang() === "zh" ? "zh-CN" : "en";
  document.title = `${t("title")} · Jixiao`;
  const c = claims(getToken());
  if (c === "missing") return signIn(t("token_missing"));
  if (c === "expired") return signIn(t("token_expired"));
  if (c === "malformed") return signIn(t("token_malformed"));
  try {
    await loadSetup();
  } catch (e) {
    const f = failure(e);
    if (f.kind === "signin") return signIn(f.message);
    root.replaceChildren(h("main", {}, failureNotice(f)));
    return;
  }
  await route(c);
}

async function route(c: Claims): Promise<void> {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const { page: asked, params } = parseRoute();
  const allowed = Object.keys(PAGES).filter((p) => hasAny(c, PAGES[p].roles));
  const page = asked in PAGES ? asked : (allowed[0] ?? "publications");

  // The group: the one asked for, else the unit's own, else the first of the latest cycle.
  let group = params.get("group") ?? "";
  const cycle = group ? group.split("/groups/")[0] : (cycles[0]?.name ?? "");
  let groups: Group[] = [];
  try {
    groups = cycle ? await groupsOf(cycle) : [];
  } catch (e) {
    const f = failure(e);
    if (f.kind === "signin") return signIn(f.message);
  }
  if (!group) {
    const own = c.unit ? groups.find((g) => g.units.includes(`units/${c.unit}`)) : undefined;
    group = own?.name ?? groups[0]?.name ?? "";
  }
  if (asked !== page || !params.get("group")) {
    params.set("group", group);
    history.replaceState(null, "", `${location.pathname}${location.search}#/${page}?${params.toString()}`);
  }
  // English names come from the units; Chinese ones travel with every row.
  if (currentLang() === "en") await loadUnits().catch(() => undefined);
  if (controller.signal.aborted) return;

  const app: App = {
    api,
    claims: c,
    groups,
    group,
    groupLabel: (name) => groups.find((g) => g.name === name)?.displayName || lastSegment(name),
    units: loadUnits,
    unitLabel,
    go: (p, ps = {}) => {
      location.hash = href(p, { group, ...ps });
    },
    signIn,
  };

  const main = h("main", { id: "main" });
  root.replaceChildren(header(c, page, allowed, group, cycle, groups), main);
  try {
    await PAGES[page].render({ app, main, params, signal: controller.signal });
  } catch (e) {
    if (controller.signal.aborted) return;
    const f = failure(e);
    if (f.kind === "signin") return signIn(f.message);
    main.replaceChildren(failureNotice(f));
  }
}

function header(c: Claims, page: string, allowed: string[], group: string, cycle: string, groups: Group[]): HTMLElement {
  const cycleSelect = h(
    "select",
    {
      "data-picker": "cycle",
      onchange: async (e: Event) => {
        const gs = await groupsOf((e.target as HTMLSelectElement).value).catch(() => [] as Group[]);
        location.hash = href(page, { group: gs[0]?.name ?? "" });
      },
    },
    cycles.map((x) => h("option", { value: x.name, selected: x.name === cycle }, x.title || lastSegment(x.name))),
  );
  const groupSelect = h(
    "select",
    {
      "data-picker": "group",
      onchange: (e: Event) => {
        location.hash = href(page, { group: (e.target as HTMLSelectElement).value });
      },
    },
    groups.map((g) => h("option", { value: g.name, selected: g.name === group }, g.displayName || lastSegment(g.name))),
  );
  const who = c.unit ? `${c.sub} (${c.roles.join(", ")}: ${c.unit})` : `${c.sub} (${c.roles.join(", ")})`;
  return h(
    "header",
    { class: "top" },
    h("h1", {}, t("title")),
    h(
      "nav",
      { class: "no-print" },
      allowed.map((p) =>
        h("a", { href: href(p, { group }), class: p === page ? "active" : "", "data-nav": p }, t(PAGES[p].key)),
      ),
    ),
    h("span", { class: "spacer" }),
    h("label", { class: "picker no-print" }, `${t("cycle")} `, cycleSelect),
    h("label", { class: "picker no-print" }, `${t("group")} `, groupSelect),
    langButton(),
    h("span", { class: "who", title: t("signed_in_as"), "data-who": c.sub }, who),
    h(
      "button",
      {
        type: "button",
        class: "no-print",
        onclick: () => {
          setToken(null);
          cycles = [];
          groupsByCycle = new Map();
          unitsPromise = undefined;
          signIn(t("token_missing"));
        },
      },
      t("sign_out"),
    ),
  );
}

takeTokenFromFragment();
window.addEventListener("hashchange", () => {
  if (location.hash.startsWith("#token=")) {
    takeTokenFromFragment();
    cycles = [];
    void start();
    return;
  }
  const c = claims(getToken());
  if (typeof c === "object" && cycles.length > 0) void route(c);
  else void start();
});
void start();
