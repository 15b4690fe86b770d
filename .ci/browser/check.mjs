// Browser check for CI: a real headless Chromium signs in to a freshly started demo, opens a
// table, creates a record through the form and sees it in the list, then opens the tenant and
// platform analytics dashboards and checks their charts are drawn. Screenshots go to OUT.
// Usage: node check.mjs http://127.0.0.1:PORT OUT_DIR
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [base, out] = process.argv.slice(2);
if (!base || !out) {
  console.error("usage: node check.mjs BASE_URL OUT_DIR");
  process.exit(2);
}
mkdirSync(out, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const step = (msg) => console.log(`browser: ${msg}`);
let failed = false;
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
try {
  await page.goto(`${base}/admin/login`);
  await page.screenshot({ path: `${out}/1-login.png` });
  await page.fill("#email", "olivia@acme.example");
  await page.fill("#password", "tenantd-demo-2026");
  await Promise.all([page.waitForURL(`${base}/admin`), page.click("main button[type=submit]")]);
  step("signed in");
  await page.click("a[href='/admin/t/acme/']");
  await page.waitForSelector("text=customers");
  await page.screenshot({ path: `${out}/2-tenant-home.png` });
  await page.click("a[href='/admin/t/acme/data/customers']");
  await page.waitForSelector("table.data");
  step("opened the customers table");
  const name = `Browser Check ${Date.now()}`;
  await page.click("text=New customers");
  await page.fill("#name", name);
  await page.fill("#email", `check-${Date.now()}@example.test`);
  await page.fill("#status", "active");
  await Promise.all([page.waitForURL(/data\/customers\?ok=/), page.click("main button[type=submit]")]);
  step("created a record through the form");
  await page.goto(`${base}/admin/t/acme/data/customers?order_by=-id`);
  const listed = await page.locator("table.data").innerText();
  if (!listed.includes(name)) {
    throw new Error(`the new record "${name}" is not in the list`);
  }
  step(`sees "${name}" in the list`);
  await page.screenshot({ path: `${out}/3-list.png`, fullPage: true });
  // Issue 21: the analytics dashboard draws its charts (SVG with data) on the server.
  await page.goto(`${base}/admin/t/acme/analytics?days=7`);
  const charts = await page.locator("svg.chart[role=img]").count();
  const bars = await page.locator("svg.chart rect").evaluateAll((rs) => rs.filter((r) => Number(r.getAttribute("height")) > 0).length);
  if (charts < 3 || bars < 1) {
    throw new Error(`analytics dashboard: ${charts} charts, ${bars} bars with data`);
  }
  step(`analytics dashboard: ${charts} charts, ${bars} bars with data`);
  await page.screenshot({ path: `${out}/4-analytics.png`, fullPage: true });
  // The platform dashboard, as the demo's platform admin in a session of its own.
  const root = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await root.goto(`${base}/admin/login`);
  await root.fill("#email", "root@tenantd.example");
  await root.fill("#password", "tenantd-demo-2026");
  await Promise.all([root.waitForURL(`${base}/admin`), root.click("main button[type=submit]")]);
  await root.goto(`${base}/admin/platform/analytics?days=7`);
  const pCharts = await root.locator("svg.chart[role=img]").count();
  const pBars = await root.locator("svg.chart rect").evaluateAll((rs) => rs.filter((r) => Number(r.getAttribute("height")) > 0).length);
  const pSparks = await root.locator("svg.spark polyline").evaluateAll((ls) => ls.filter((l) => (l.getAttribute("points") || "").trim() !== "").length);
  if (pCharts < 1 || pBars < 1 || pSparks < 1) {
    throw new Error(`platform dashboard: ${pCharts} charts, ${pBars} bars with data, ${pSparks} sparklines with data`);
  }
  // Wide tables scroll inside their card instead of widening the page.
  const overflow = await root.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) {
    throw new Error(`platform dashboard: the page is ${overflow}px wider than the window`);
  }
  step(`platform dashboard: ${pCharts} charts, ${pBars} bars and ${pSparks} sparklines with data`);
  await root.screenshot({ path: `${out}/5-platform-analytics.png`, fullPage: true });
} catch (e) {
  failed = true;
  console.error(`browser check failed: ${e.message}`);
  await page.screenshot({ path: `${out}/failure.png`, fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
console.log(failed ? "browser: 0 passed, 1 failed" : "browser: 1 passed, 0 failed");
process.exit(failed ? 1 : 0);
