// The dashboard in a real browser: Debian's chromium, headless, driven by
// playwright-core, against `jixiao demo` on a free port with a fresh data
// folder. Run by tests/run.sh (tests/browser.sh installs what it needs):
//
//   JIXIAO_BIN=target/debug/jixiao node --test --test-reporter=spec web/tests/browser.test.mjs
//
// Screenshots of every page and the measurements (first load, change to
// DOM, 3,000 units) go to target/dashboard/.

import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Channel, ReviewsService, SurveyResponseSchema } from "./gen/jixiao/reviews/v1/reviews_pb.js";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const bin = resolve(repo, process.env.JIXIAO_BIN ?? "target/debug/jixiao");
const out = resolve(repo, "target/dashboard");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const CYCLE = "2026";
const DISTRICTS = `cycles/${CYCLE}/groups/districts`;
const DEPARTMENTS = `cycles/${CYCLE}/groups/departments`;

let demo; // the child process
let log = "";
let dir;
let addr; // http://127.0.0.1:PORT
let dashboard; // the viewer's one-click link the demo printed
let office;
let viewer;
let browser;
const report = { measuredAt: new Date().toISOString() };

/** `jixiao <args>` against the demo; stdout. */
function jixiao(args, token = office) {
  return execFileSync(bin, args, {
    env: { ...process.env, JIXIAO_ADDR: addr, JIXIAO_TOKEN: token },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

function token(args) {
  return jixiao(["token", "issue", "--data-dir", join(dir, "demo"), ...args]).trim().split("\n").pop().trim();
}

function standingsJson(group, published = false) {
  return JSON.parse(
    jixiao(["standings", "--cycle", CYCLE, "--group", group.split("/").pop(), "--json", ...(published ? ["--published"] : [])]),
  );
}

/** The page's URL for `fragment` with a token, on the server the demo started. */
function link(tok, fragment = "") {
  const base = process.env.DASHBOARD_ORIGIN ? `${process.env.DASHBOARD_ORIGIN}/?api=${encodeURIComponent(addr)}` : `${addr}/`;
  return `${base}#token=${encodeURIComponent(tok)}${fragment ? `&${fragment}` : ""}`;
}

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  return page;
}

async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: join(out, `${name}.png`), fullPage });
}

/** The table's cells as the CLI prints them, in row order. */
async function tableCells(page) {
  return page.$$eval("table.standings tbody tr", (trs) =>
    trs.map((tr) => Object.fromEntries([...tr.querySelectorAll("td")].map((td) => [td.dataset.col, td.innerText.trim()]))),
  );
}

function sameTable(cells, json, label) {
  assert.equal(cells.length, json.length, `${label}: rows`);
  json.forEach((row, i) => {
    for (const [col, value] of Object.entries(row)) {
      assert.equal(cells[i][col], value, `${label}: row ${i + 1} (${row.unit}), column ${col}`);
    }
  });
}

async function waitForRows(page, n) {
  await page.waitForFunction((n) => document.querySelectorAll("table.standings tbody tr").length === n, n, {
    timeout: 20_000,
  });
}

before(async () => {
  mkdirSync(out, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), "jixiao-browser-"));
  demo = spawn(bin, ["demo", "--listen", "127.0.0.1:0", "--data-dir", join(dir, "demo")], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
  });
  demo.stdout.on("data", (d) => (log += d));
  demo.stderr.on("data", () => undefined);
  const started = Date.now();
  while (!/viewer token[^\n]*\n\s*(\S+)\n/.test(log)) {
    if (demo.exitCode !== null) throw new Error(`demo exited ${demo.exitCode}:\n${log}`);
    if (Date.now() - started > 240_000) throw new Error(`demo not up after 240 s:\n${log}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  report.demoLoadSeconds = +((Date.now() - started) / 1000).toFixed(1);
  addr = /serving on (http:\/\/[0-9.:]+)/.exec(log)[1];
  office = /office token[^\n]*\n\s*(\S+)\n/.exec(log)[1];
  viewer = /viewer token[^\n]*\n\s*(\S+)\n/.exec(log)[1];
  dashboard = /dashboard[^\n]*?(http:\/\/\S+#token=\S+)/.exec(log)?.[1];
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  });
});

after(async () => {
  await browser?.close();
  if (demo && demo.exitCode === null) {
    demo.kill("SIGINT");
    await new Promise((r) => {
      const t = setTimeout(() => {
        demo.kill("SIGKILL");
        r();
      }, 10_000);
      demo.on("exit", () => {
        clearTimeout(t);
        r();
      });
    });
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  writeFileSync(join(out, "report.json"), JSON.stringify(report, null, 2) + "\n");
  console.log(`\ndashboard measurements (target/dashboard/report.json):\n${JSON.stringify(report, null, 2)}`);
});

describe("dashboard in chromium", () => {
  it("the demo prints a one-click link that signs the viewer in", { skip: !process.env.JIXIAO_EXPECT_LINK && "set JIXIAO_EXPECT_LINK once the demo prints it" }, () => {
    assert.ok(dashboard, `no dashboard link in the demo's output:\n${log}`);
    assert.ok(dashboard.startsWith(`${addr}/#token=`), dashboard);
  });

  it("the standings page shows exactly the figures of `jixiao standings --json`, cell by cell", async () => {
    // First load of the demo's link (the first group, departments), three
    // fresh browser contexts: navigation start to the table on screen (page
    // clock), and goto to the rows present (test clock).
    const loads = [];
    for (let i = 0; i < 3; i++) {
      const page = await newPage();
      const t0 = Date.now();
      await page.goto(dashboard ?? link(viewer), { waitUntil: "commit" });
      await waitForRows(page, 10);
      const wall = Date.now() - t0;
      const inPage = await page.evaluate(() => window.__jixiao?.firstRender);
      loads.push({ wallMs: wall, navigationToTableMs: Math.round(inPage) });
      if (i < 2) await page.context().close();
      else {
        sameTable(await tableCells(page), standingsJson(DEPARTMENTS), "departments");
        await page.goto(link(viewer, `/standings?group=${encodeURIComponent(DISTRICTS)}`));
        await waitForRows(page, 6);
        sameTable(await tableCells(page), standingsJson(DISTRICTS), "districts");
        await page.waitForSelector("[data-chart=components] canvas");
        await shot(page, "standings");
        await page.emulateMedia({ media: "print" });
        await shot(page, "standings-print");
        assert.equal(await page.locator("nav").isVisible(), false, "print hides the navigation");
        await page.context().close();
      }
    }
    report.firstLoad = loads;
    const median = [...loads].sort((a, b) => a.navigationToTableMs - b.navigationToTableMs)[1].navigationToTableMs;
    assert.ok(median < 1500, `first load ${median} ms (target < 1 s)`);
  });

  it("50 survey responses pushed through the RPC change the page's figure within 2 s, without reload", async () => {
    const page = await newPage();
    await page.goto(link(viewer, `/standings?group=${encodeURIComponent(DISTRICTS)}`));
    await waitForRows(page, 6);
    await page.evaluate(() => (window.__notReloaded = true));
    const cell = 'td[data-unit="xiangan"][data-col="survey"]';
    const before = await page.locator(cell).innerText();

    // The survey firm's platform pushes over gRPC-Web, as any browser client would.
    const platform = token(["--role", "survey_platform", "--subject", "survey-firm"]);
    const reviews = createClient(
      ReviewsService,
      createGrpcWebTransport({
        baseUrl: addr,
        interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${platform}`), next(req))],
      }),
    );
    const run = Date.now().toString(36);
    const questions = ["efficiency", "attitude", "openness", "integrity", "overall"];
    const responses = Array.from({ length: 50 }, (_, i) =>
      create(SurveyResponseSchema, {
        responseId: `browser-${run}-${i}`,
        unit: "units/xiangan",
        category: "residents",
        channel: Channel.ONLINE,
        answerTime: timestampNow(),
        answers: questions.map((question) => ({ question, answer: "dissatisfied" })),
      }),
    );
    const changed = page.waitForFunction(
      ([sel, was]) => {
        const now = document.querySelector(sel)?.textContent;
        return now && now !== was ? Date.now() : false;
      },
      [cell, before],
      { timeout: 5_000, polling: "raf" },
    );
    const pushed = Date.now();
    const answer = await reviews.pushResponses({ campaign: `cycles/${CYCLE}/campaigns/survey-districts`, responses });
    const acked = Date.now();
    assert.equal(answer.accepted, 50, JSON.stringify(answer));
    const seen = await (await changed).jsonValue();
    const elapsed = seen - pushed;
    const last = await page.evaluate(() => window.__jixiao.updates.at(-1));
    report.changeToDom = {
      pushToDomMs: elapsed,
      pushAckMs: acked - pushed,
      streamMessageToDomMs: +(last.applied - last.received).toFixed(2),
      streamMessageToFrameMs: last.frame ? +(last.frame - last.received).toFixed(2) : null,
      cellsChanged: last.cells,
    };
    assert.ok(elapsed < 2000, `the figure changed ${elapsed} ms after the push`);
    assert.equal(await page.evaluate(() => window.__notReloaded), true, "the page was not reloaded");
    assert.notEqual(await page.locator(cell).innerText(), before);
    sameTable(await tableCells(page), standingsJson(DISTRICTS), "districts after the push");
    await shot(page, "standings-after-push");
    await page.context().close();
  });

  it("a unit's token sees its own feedback and is refused another unit's, with a readable message", async () => {
    const tongan = token(["--role", "unit", "--unit", "tongan"]);
    const page = await newPage();
    await page.goto(link(tongan));
    await page.waitForSelector("[data-page=feedback] .figures");
    const own = standingsJson(DISTRICTS, true).find((r) => r.unit === "tongan");
    const figures = await page.$$eval(".figure strong", (els) => els.map((e) => e.textContent));
    assert.ok(figures.includes(own.composite), `feedback shows ${figures}, published composite ${own.composite}`);
    assert.equal(await page.locator("[data-nav=standings]").count(), 0, "a unit is not offered the provisional standings");
    await shot(page, "feedback");
    await page.goto(link(tongan, `/feedback?group=${encodeURIComponent(DISTRICTS)}&unit=units%2Fsiming`));
    const refused = page.locator("[data-notice=refused]");
    await refused.waitFor({ timeout: 10_000 });
    const text = await refused.innerText();
    assert.match(text, /无权查看/);
    assert.ok(text.length > 20, text);
    await shot(page, "feedback-refused");
    // The provisional standings are the office's and the viewers': a readable refusal too.
    await page.goto(link(tongan, `/standings?group=${encodeURIComponent(DISTRICTS)}`));
    await page.locator("[data-notice=refused]").waitFor({ timeout: 10_000 });
    await page.context().close();
  });

  it("a bad or expired token shows a sign-in message, not a blank page", async () => {
    const cases = {
      garbage: "not-a-token",
      "wrong-signature": viewer.slice(0, -6) + (viewer.endsWith("AAAAAA") ? "BBBBBB" : "AAAAAA"),
      expired: token(["--role", "viewer", "--ttl-hours", "0"]),
    };
    for (const [name, tok] of Object.entries(cases)) {
      const page = await newPage();
      await page.goto(link(tok));
      await page.waitForSelector("[data-page=signin] [data-notice=signin]", { timeout: 10_000 });
      const text = await page.locator("[data-notice=signin]").innerText();
      assert.ok(text.trim().length > 4, `${name}: ${text}`);
      assert.equal(await page.locator("textarea[name=token]").isVisible(), true);
      if (name === "wrong-signature") await shot(page, "signin");
      await page.context().close();
    }
  });

  it("the verify action on a publication shows verified", async () => {
    const page = await newPage();
    await page.goto(link(viewer, `/publications?group=${encodeURIComponent(DISTRICTS)}`));
    await page.waitForSelector("[data-page=publications] table.standings");
    await page.click("[data-action=lang]");
    await page.waitForSelector("[data-action=verify]:has-text('Verify')");
    await page.click("[data-action=verify]");
    await page.waitForSelector("[data-verify=valid]", { timeout: 30_000 });
    assert.match(await page.locator("[data-verify]").innerText(), /verified/);
    const digest = await page.locator("[data-digest]").innerText();
    assert.match(log, new RegExp(digest), "the digest the demo published");
    // CSV for Excel: UTF-8 with a byte-order mark.
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("text=Export CSV")]);
    const csv = readFileSync(await download.path());
    assert.deepEqual([...csv.subarray(0, 3)], [0xef, 0xbb, 0xbf], "BOM");
    assert.match(csv.toString("utf8"), /xiangan,翔安区人民政府/);
    await shot(page, "publications");
    await page.context().close();
  });

  it("distributions, archive and audit render, and audit follows the role", async () => {
    const page = await newPage();
    await page.goto(link(viewer, `/distributions?group=${encodeURIComponent(DISTRICTS)}`));
    await page.waitForSelector("[data-page=distributions] tbody tr[data-component=COMPOSITE]");
    await page.waitForSelector(".chart canvas");
    await shot(page, "distributions");
    await page.goto(link(viewer, `/archive?group=${encodeURIComponent(DISTRICTS)}&unit=units%2Fsiming`));
    await page.waitForSelector("[data-chart=archive] canvas");
    await shot(page, "archive");
    await page.goto(link(viewer, `/audit?group=${encodeURIComponent(DISTRICTS)}`));
    await page.locator("[data-notice=refused]").first().waitFor();
    await page.context().close();

    const desk = await newPage();
    await desk.goto(link(office, `/audit?group=${encodeURIComponent(DISTRICTS)}`));
    await desk.waitForSelector("[data-chain=aggregator][data-valid=true]", { timeout: 30_000 });
    assert.equal(await desk.locator("[data-valid=true]").count(), 5, "five chains verify");
    await desk.waitForSelector("[data-audit=records] tbody tr");
    await shot(desk, "audit");
    await desk.context().close();
  });

  it("3,000 units render and update without freezing the page (bench.html)", async () => {
    const page = await newPage();
    const base = process.env.DASHBOARD_ORIGIN ?? addr;
    await page.goto(`${base}/bench.html?units=3000&changes=20&every=250`);
    await page.waitForFunction(() => window.__bench, undefined, { timeout: 120_000, polling: 500 });
    const bench = await page.evaluate(() => window.__bench);
    report.bench3000 = bench;
    await shot(page, "bench-3000", false);
    await page.context().close();
    assert.equal(bench.tableRows, 3000);
    assert.ok(bench.changeToDomMs.p95 < 1000, JSON.stringify(bench));
  });
});
