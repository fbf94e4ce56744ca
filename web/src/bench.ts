// Browser benchmark of the live standings page at scale (`/bench.html?units=3000`):
// the real page code renders a group of N units from a WatchStandings stream
// made in the page, which then pushes changes (the whole table each time, as
// the suite sends it); for each change it reports the time from the
// message's bytes arriving to the updated table (decode + DOM changed) and
// to the next frame, and the long tasks (main thread blocked > 50 ms) seen
// meanwhile. The end-to-end path (suite → gRPC-Web → page) is measured at
// the demo's size by web/tests/browser.test.mjs.

import "./style.css";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { createRouterTransport } from "@connectrpc/connect";
import { makeApi } from "./api.js";
import { probe, type App } from "./app.js";
import { h } from "./dom.js";
import {
  AggregatorService,
  ListPublicationsResponseSchema,
  StandingsSchema,
  type StandingRow,
  StandingRowSchema,
  type Standings,
} from "./gen/jixiao/aggregator/v1/aggregator_pb.js";
import { standingsPage } from "./pages/standings.js";

const q = new URLSearchParams(location.search);
const UNITS = Number(q.get("units") ?? 3000);
const CHANGES = Number(q.get("changes") ?? 30);
const EVERY = Number(q.get("every") ?? 250);
const GROUP = "cycles/2026/groups/bench";

// A fixed pseudo-random sequence, so every run draws the same group.
let seed = 20260601;
function rand(): number {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
}

const fix = (x: number) => ({ value: x.toFixed(3) });
interface Unit {
  id: string;
  indicator: number;
  survey: number;
  online: number;
  mutual: number;
  deductions: number;
  credits: number;
}
const units: Unit[] = Array.from({ length: UNITS }, (_, i) => ({
  id: `u${String(i).padStart(5, "0")}`,
  indicator: 35 + rand() * 25,
  survey: 20 + rand() * 10,
  online: 3 + rand() * 2,
  mutual: 2 + rand() * 3,
  deductions: rand() * 6,
  credits: rand() * 2,
}));

function standings(revision: number): Standings {
  const rows: StandingRow[] = units.map((u) => {
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    const review = r3(u.survey) + r3(u.online) + r3(u.mutual);
    const adjustment = Math.max(-5, Math.min(0, r3(u.credits) - r3(u.deductions)));
    return create(StandingRowSchema, {
      unit: `units/${u.id}`,
      unitDisplayName: `基准单位${u.id}`,
      indicator: fix(u.indicator),
      survey: fix(u.survey),
      online: fix(u.online),
      mutual: fix(u.mutual),
      reviewTotal: fix(review),
      deductions: fix(u.deductions),
      credits: fix(u.credits),
      adjustment: fix(adjustment),
      composite: fix(r3(u.indicator) + review + adjustment),
    });
  });
  rows.sort((a, b) => Number(b.composite!.value) - Number(a.composite!.value) || a.unit.localeCompare(b.unit));
  rows.forEach((r, i) => {
    r.rank = i > 0 && rows[i - 1].composite!.value === r.composite!.value ? rows[i - 1].rank : i + 1;
  });
  return create(StandingsSchema, { group: GROUP, rows, revision: BigInt(revision), updateTime: timestampNow() });
}

const pushedAt = new Map<string, number>();
const longTasks: number[] = [];
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) longTasks.push(e.duration);
  }).observe({ type: "longtask", buffered: true });
} catch {
  // No long-task timing in this browser; the report says so (empty list).
}

// The server's side: each change is encoded to its wire bytes before the
// clock starts (the suite sends pre-encoded tables); the clock starts when
// the bytes are handed to the client, which decodes them with the generated
// schema and renders them with the real page code.
async function* watchStandings(): AsyncGenerator<Standings> {
  for (let n = 1; n <= CHANGES + 1; n++) {
    if (n > 1) {
      await new Promise((r) => setTimeout(r, EVERY));
      // One unit's survey moves, as 50 responses would move it.
      const u = units[Math.floor(rand() * units.length)];
      u.survey = Math.max(0, Math.min(30, u.survey + (rand() - 0.5) * 2));
    }
    const bytes = toBinary(StandingsSchema, standings(n));
    pushedAt.set(String(n), performance.now());
    yield fromBinary(StandingsSchema, bytes);
  }
  await new Promise(() => undefined);
}

// Every other call (the latest publication) through connect's router transport.
const transport = createRouterTransport(({ service }) => {
  service(AggregatorService, {
    listPublications() {
      return create(ListPublicationsResponseSchema, {});
    },
  });
});
const api = makeApi(transport);
api.aggregator = { ...api.aggregator, watchStandings } as typeof api.aggregator;

const root = document.getElementById("app")!;
const main = h("main");
const out = h("pre", { id: "bench-result" }, `rendering ${UNITS} units…`);
root.replaceChildren(h("header", { class: "top" }, h("h1", {}, `Standings benchmark · ${UNITS} units`)), out, main);

const app: App = {
  api,
  claims: { sub: "bench", roles: ["viewer"], exp: 4102444800 },
  groups: [],
  group: GROUP,
  groupLabel: () => `基准组（${UNITS} 个单位）`,
  units: async () => new Map(),
  unitLabel: (_, fallback) => fallback ?? "",
  go: () => undefined,
  signIn: () => undefined,
};
const controller = new AbortController();
void standingsPage({ app, main, params: new URLSearchParams(), signal: controller.signal });

function quantile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN;
}

const timer = setInterval(() => {
  const updates = probe().updates;
  const done = updates.length >= CHANGES + 1 && updates.every((u) => u.frame !== undefined);
  if (!done) return;
  clearInterval(timer);
  const changes = updates.slice(1).map((u) => ({
    toDom: u.applied - pushedAt.get(u.revision)!,
    toFrame: u.frame! - pushedAt.get(u.revision)!,
    cells: u.cells,
  }));
  const toDom = changes.map((c) => c.toDom);
  const toFrame = changes.map((c) => c.toFrame);
  const first = updates[0];
  const result = {
    units: UNITS,
    changes: changes.length,
    firstRenderMs: +(first.applied - pushedAt.get(first.revision)!).toFixed(1),
    changeToDomMs: { median: +quantile(toDom, 0.5).toFixed(1), p95: +quantile(toDom, 0.95).toFixed(1), max: +Math.max(...toDom).toFixed(1) },
    changeToFrameMs: { median: +quantile(toFrame, 0.5).toFixed(1), p95: +quantile(toFrame, 0.95).toFixed(1), max: +Math.max(...toFrame).toFixed(1) },
    cellsChangedMedian: quantile(changes.map((c) => c.cells), 0.5),
    longTasksMs: longTasks.map((d) => Math.round(d)),
    tableRows: document.querySelectorAll("table.standings tbody tr").length,
  };
  out.textContent = JSON.stringify(result, null, 2);
  (window as unknown as { __bench: unknown }).__bench = result;
}, 100);
