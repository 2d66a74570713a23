// Browser scenarios of tests/web.rs: headless Chromium (Debian's, driven
// by playwright-core) against a `tend serve` on 127.0.0.1 that the Rust
// test started. Run as `node browser.js <scenario>` with:
//   TEND_BASE         the server, e.g. http://127.0.0.1:40123
//   TEND_WEB_ARGS     JSON: the scenario's tokens, run ids, names
//   TEND_CHROMIUM     the browser, e.g. /usr/bin/chromium
//   TEND_SCREENSHOTS  where each main page's screenshot goes
// Every page visited is checked with axe-core (WCAG 2.1 A and AA). A
// failed expectation exits 1 with what was expected and what the page
// showed; the last line on stdout is the scenario's result as JSON.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const base = process.env.TEND_BASE;
const args = JSON.parse(process.env.TEND_WEB_ARGS || "{}");
const shots = process.env.TEND_SCREENSHOTS;
const axeSource = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
/** How long a scenario waits for something to show: 20 s. */
const WAIT = 20000;

function expect(ok, what) {
  if (!ok) throw new Error("expected " + what);
}

async function launch() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "tend-web-chromium-"));
  // Without the background-networking flags Chromium tries the network
  // and this closed machine refuses it; a fresh profile per run.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.TEND_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  context.setDefaultTimeout(WAIT);
  return { context, profile };
}

/** Runs axe-core on the page; any WCAG 2.1 A/AA violation fails the scenario. */
async function accessible(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }));
  const found = result.violations.map((v) =>
    `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  expect(found.length === 0, `page ${name} to pass axe-core, found:\n  ${found.join("\n  ")}`);
  console.log(`axe: ${name}: ${result.passes.length} rules pass, no violation`);
}

async function shot(page, name) {
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/** Checks a main page (axe) and keeps its screenshot. */
async function look(page, name) {
  await accessible(page, name);
  await shot(page, name);
}

async function signIn(page, token, from) {
  await page.goto(base + (from || "/"));
  expect(new URL(page.url()).pathname === "/signin", `a signed-out visit to be sent to /signin, got ${page.url()}`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#who").waitFor();
}

async function text(page, selector) {
  return (await page.locator(selector).innerText()).trim();
}

async function api(method, url, token, body) {
  const r = await fetch(base + url, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await r.json();
  expect(r.ok, `${method} ${url} to succeed, got ${r.status} ${JSON.stringify(json)}`);
  return json;
}

/** Posts a form from the page (as a forged request would, with the page's cookie). */
async function forge(page, action, fields) {
  return page.evaluate(async ({ action, fields }) => {
    const r = await fetch(action, { method: "POST", body: new URLSearchParams(fields), redirect: "manual" });
    return { status: r.status, text: await r.text() };
  }, { action, fields });
}

const scenarios = {
  // Sign in, see a run appear live on the runs page, open it, approve it,
  // and see it finish with its report, all without reloading by hand.
  async approve(page, context) {
    await page.goto(base + "/runs");
    expect(new URL(page.url()).pathname === "/signin", "/runs to ask for a sign-in");
    await page.getByLabel("API token").fill("not-a-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    expect((await text(page, "#signin-error")).includes("this token is not valid"), "a wrong token to be refused");
    await look(page, "signin");
    await page.getByLabel("API token").fill(args.admin);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#who").waitFor();
    expect(new URL(page.url()).pathname === "/runs", `to land on /runs after signing in, got ${page.url()}`);
    expect((await text(page, "#who")) === "admin", "the page to name the signed-in token");
    const cookie = (await context.cookies()).find((c) => c.name === "tend_session");
    expect(cookie && cookie.httpOnly && cookie.sameSite === "Strict" && !cookie.secure,
      `an HttpOnly, SameSite=Strict session cookie (not Secure over plain HTTP), got ${JSON.stringify(cookie)}`);

    await page.locator('body[data-live-connected="true"]').waitFor({ state: "attached" });
    await page.evaluate(() => { window.tendNotReloaded = true; });
    const { run_id: id } = await api("POST", `/v1/runbooks/${args.runbook}/runs`, args.trigger, {});
    await page.locator(`tr[data-run="${id}"]`).waitFor();
    expect(await page.evaluate(() => window.tendNotReloaded === true), "the new run to appear without a reload");
    console.log(`run ${id} appeared live`);
    await page.locator('p.notice a[href="/approvals"]').waitFor();
    await look(page, "runs");

    await page.getByRole("link", { name: "Approvals" }).click();
    await page.locator(`#approvals a[href="/runs/${id}"]`).waitFor();
    await look(page, "approvals");
    await page.locator(`#approvals a[href="/runs/${id}"]`).click();
    await page.getByRole("heading", { name: "Waiting for approval" }).waitFor();
    expect((await page.locator("#live").innerText()).includes(args.approval_message),
      `the approval's message ${JSON.stringify(args.approval_message)} on the run page`);
    await look(page, "run-waiting");

    // By keyboard: type the reason, Tab to "Approve", press Enter.
    await page.getByLabel(/Reason/).fill("restart approved by the on-call");
    await page.keyboard.press("Tab");
    expect((await page.evaluate(() => document.activeElement.textContent.trim())) === "Approve",
      "Tab from the reason to reach the Approve button");
    await page.keyboard.press("Enter");
    await page.locator('#run-status:text("succeeded")').waitFor();
    const live = await page.locator("#live").innerText();
    expect(live.includes("restart approved by the on-call") && live.includes("token:admin"),
      "the approval's reason and approver on the run page");
    await page.locator("#report").waitFor();
    expect((await text(page, "#report")).includes(id), "the incident report to name the run");
    await look(page, "run-succeeded");

    // Its critical escalation, acknowledged from the run's own page.
    const row = page.locator("#run-escalations tr", { hasText: args.escalation_message });
    await row.getByRole("button", { name: "Acknowledge" }).click();
    await page.locator("#run-escalations tr", { hasText: args.escalation_message })
      .locator("text=by token:admin").waitFor();
    expect(new URL(page.url()).pathname === `/runs/${id}`, `to stay on the run's page, got ${page.url()}`);
    return { run_id: id };
  },

  // A failed run is found with the status filter and its page says why.
  async failure(page) {
    await signIn(page, args.admin);
    // The first Tab reaches the skip link, which moves focus past the navigation.
    await page.keyboard.press("Tab");
    expect((await page.evaluate(() => document.activeElement.textContent.trim())) === "Skip to content",
      "the first Tab to reach the skip link");
    await page.keyboard.press("Enter");
    expect(new URL(page.url()).hash === "#main", "the skip link to lead to the main content");
    await page.getByLabel("Status").selectOption("failed");
    await page.getByRole("button", { name: "Show" }).click();
    const link = page.locator(`#runs a[href="/runs/${args.failed}"]`);
    await link.waitFor();
    expect((await page.locator("#runs tbody tr").count()) === 1, "only the failed run under the failed filter");
    await link.click();
    await page.getByRole("heading", { name: "Why it failed" }).waitFor();
    const why = await page.locator("section.problem").innerText();
    expect(why.includes(args.error), `the step's error ${JSON.stringify(args.error)} under "Why it failed", got ${why}`);
    expect(await page.locator("details[open] >> text=disk /var is 97% full").count() > 0,
      "the failed attempt opened with its finding");
    await look(page, "run-failed");
    return {};
  },

  // Acknowledge an open escalation, then resolve it with a reason.
  async escalation(page) {
    await signIn(page, args.admin, "/escalations");
    expect(new URL(page.url()).pathname === "/escalations", "to come back to /escalations after signing in");
    const open = page.locator(`#open tr[data-escalation="${args.escalation}"]`);
    await open.waitFor();
    await look(page, "escalations");
    await open.getByRole("button", { name: "Acknowledge" }).click();
    const acked = page.locator(`#acknowledged tr[data-escalation="${args.escalation}"]`);
    await acked.waitFor();
    expect((await acked.innerText()).includes("acknowledged by token:admin"), "who acknowledged it");
    await acked.getByLabel("Resolution").fill("cache cleared by hand");
    await acked.getByRole("button", { name: "Resolve" }).click();
    const resolved = page.locator(`#resolved tr[data-escalation="${args.escalation}"]`);
    await resolved.waitFor();
    expect((await resolved.innerText()).includes("cache cleared by hand"), "the resolution on the resolved row");
    return {};
  },

  // A read-scope token sees no buttons, and the server refuses the
  // actions anyway; a form without its CSRF token is refused too.
  async reader(page, context) {
    await signIn(page, args.reader, `/runs/${args.waiting}`);
    await page.getByRole("heading", { name: "Waiting for approval" }).waitFor();
    for (const name of ["Approve", "Reject", "Cancel run"]) {
      expect((await page.getByRole("button", { name }).count()) === 0, `no ${name} button for a read token`);
    }
    await look(page, "run-read-only");
    const csrf = await page.locator('input[name="csrf"]').first().inputValue();
    const refused = await forge(page, `/runs/${args.waiting}/approve`, { csrf, reason: "sneaky" });
    expect(refused.status === 403, `403 for a read token's approval, got ${refused.status}`);
    expect(refused.text.includes("token &quot;reader&quot; has scopes [read]; this needs &quot;admin&quot;"),
      `the API's scope message, got ${refused.text}`);
    const cancel = await forge(page, `/runs/${args.waiting}/cancel`, { csrf });
    expect(cancel.status === 403, `403 for a read token's cancel, got ${cancel.status}`);
    const noCsrf = await forge(page, `/runs/${args.waiting}/approve`, { reason: "x" });
    expect(noCsrf.status === 400, `400 for a form without its csrf field, got ${noCsrf.status}`);
    const badCsrf = await forge(page, `/runs/${args.waiting}/approve`, { csrf: "0".repeat(64) });
    expect(badCsrf.status === 403 && badCsrf.text.includes("CSRF token is missing or wrong"),
      `403 naming the CSRF token for a wrong one, got ${badCsrf.status} ${badCsrf.text}`);
    await page.goto(base + "/escalations");
    expect((await page.getByRole("button", { name: /Acknowledge|Resolve/ }).count()) === 0,
      "no acknowledge or resolve button for a read token");
    const ack = await forge(page, `/escalations/${args.escalation}/ack`, { csrf });
    expect(ack.status === 403, `403 for a read token's acknowledgement, got ${ack.status}`);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.locator("#token").waitFor();
    expect(!(await context.cookies()).some((c) => c.name === "tend_session"), "the session cookie gone after sign-out");
    await page.goto(base + "/runs");
    expect(new URL(page.url()).pathname === "/signin", "a signed-out browser to be sent to sign in again");
    return {};
  },

  // The runbook page shows params and next fires; its form refuses bad
  // params with the API's messages and starts a run with good ones.
  async start(page) {
    await signIn(page, args.trigger, "/runbooks");
    await page.locator(`#runbooks a[href="/runbooks/${args.runbook}"]`).waitFor();
    expect((await text(page, "#load-problems")).includes(args.problem_file), "the broken file among the load problems");
    await look(page, "runbooks");
    await page.locator(`#runbooks a[href="/runbooks/${args.runbook}"]`).click();
    expect((await page.locator("#triggers time").count()) >= 5, "the next fire times of the cron trigger");
    await page.getByLabel(/^replicas/).fill("many");
    await page.getByRole("button", { name: "Start run" }).click();
    const errors = await text(page, "#start-errors");
    expect(errors.includes(args.bad_param_error), `the API's message ${args.bad_param_error}, got ${errors}`);
    expect((await page.getByLabel(/^replicas/).inputValue()) === "many", "the form to keep what was typed");
    await look(page, "runbook");
    await page.getByLabel(/^replicas/).fill("3");
    await page.getByLabel(/^target/).fill("checkout-eu");
    await page.getByLabel(/^mode/).selectOption({ label: "all-at-once" });
    await page.getByRole("button", { name: "Start run" }).click();
    await page.locator("#run-status").waitFor();
    const id = new URL(page.url()).pathname.split("/").pop();
    await page.goto(base + "/plugins");
    await page.getByRole("heading", { name: /^echo/ }).waitFor();
    await look(page, "plugins");
    return { run_id: id };
  },
};

(async () => {
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) throw new Error(`no scenario ${JSON.stringify(name)}; there are ${Object.keys(scenarios).join(", ")}`);
  fs.rmSync(path.join(shots, `failed-${name}.png`), { force: true });
  const { context, profile } = await launch();
  const page = context.pages()[0] || (await context.newPage());
  let result;
  try {
    result = await scenario(page, context);
  } catch (e) {
    await shot(page, `failed-${name}`).catch(() => {});
    const body = await page.locator("body").innerText().catch(() => "(no page)");
    throw new Error(`${e.message}\nat ${page.url()}, the page showed:\n${body.slice(0, 3000)}`);
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(JSON.stringify(result));
})().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
