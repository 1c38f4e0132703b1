// Drives Home Assistant's frontend in headless Chromium (Debian's) with playwright-core:
// log in, Settings → Devices & services → Add integration → Alicia TTS → voice → submit.
// Environment (set by script/ui_check.py): UI_URL, UI_USER, UI_PASSWORD, UI_OUT (screenshots),
// UI_CHROMIUM (the browser), UI_PLAYWRIGHT (the playwright-core folder), UI_VOICE (a label
// part of the voice to choose, e.g. "Joe"). Prints one line per step; exit code 0 on success.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require(process.env.UI_PLAYWRIGHT);

const url = process.env.UI_URL;
const out = process.env.UI_OUT;
const voice = new RegExp(process.env.UI_VOICE || "Joe", "i");
let shot = 0;

function step(text) {
  console.log(text);
}

function compact(text) {
  return text.replace(/\s+/g, " ").trim();
}

async function screenshot(page, name) {
  shot += 1;
  const file = path.join(out, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file });
  step(`screenshot ${path.basename(file)}`);
}

async function login(page) {
  await page.goto(url);
  await page.waitForURL(/\/auth\/authorize/);
  await page.locator("input[name=username]").fill(process.env.UI_USER);
  await page.locator("input[name=password]").fill(process.env.UI_PASSWORD);
  await screenshot(page, "login");
  await page.getByRole("button", { name: /log in/i }).click();
  await page.waitForURL((u) => !u.pathname.startsWith("/auth/"));
  await page.locator("home-assistant").waitFor();
  step(`logged in as ${process.env.UI_USER}`);
}

async function addIntegration(page) {
  await page.goto(`${url}/config/integrations/dashboard`);
  await page.getByText("Sonos", { exact: true }).first().waitFor();
  await screenshot(page, "integrations-before");
  await page.getByRole("button", { name: /add integration/i }).click();
  await page.getByPlaceholder(/search for a brand/i).fill("Alicia");
  await page.waitForTimeout(500);
  await screenshot(page, "add-integration-search");
  await page.getByText("Alicia TTS", { exact: true }).last().click();
  step("Alicia TTS chosen; its config flow opens");
  await configFlow(page);
}

// The voice select of a flow form (HA's ha-select: a picker field and a menu of items).
async function chooseVoice(page, dialog) {
  const selects = dialog.locator("ha-select");
  for (let i = 0; i < (await selects.count()); i += 1) {
    const select = selects.nth(i);
    // The field's label comes first ("Voice *"); help texts may mention voices too.
    if (!/^- listitem: Voice\b/.test(await select.ariaSnapshot())) continue;
    await select.locator("ha-picker-field").click();
    await page.getByRole("menuitem", { name: voice }).first().click();
    await page.waitForTimeout(300);
    return (await select.ariaSnapshot()).split("\n")[0].replace(/^- listitem: /, "");
  }
  return null;
}

// Wait until the dialog shows something new and settled: the next form or the result, with
// nothing loading and the same content for a second and a half.
async function nextDialogState(page, dialog, before) {
  const deadline = Date.now() + 120000;
  let last = before;
  let same = 0;
  while (Date.now() < deadline) {
    await page.waitForTimeout(500);
    const text = await dialog.ariaSnapshot().catch(() => "");
    const busy = await dialog.locator("ha-spinner, ha-circular-progress, [loading]").count();
    same = text === last && !busy ? same + 1 : 0;
    last = text;
    if (text && text !== before && same >= 3) return text;
  }
  throw new Error("the config flow dialog did not move on within 120 s");
}

// Answer the flow's forms: the wanted voice where a voice is asked, defaults elsewhere.
async function configFlow(page) {
  const dialog = page.locator("dialog-data-entry-flow");
  await dialog.getByRole("button").first().waitFor();
  await page.waitForTimeout(500);
  // Shadow DOM: the accessibility snapshot sees the dialog's content, innerText does not.
  let text = await dialog.ariaSnapshot();
  for (let form = 1; form <= 6; form += 1) {
    const title = (text.match(/- text: (.+)/) || ["", "?"])[1].trim();
    // The entry exists: HA offers to name the new device ("Skip and finish" / "Finish").
    const finish = dialog.getByRole("button", { name: /finish/i });
    if (await finish.count()) {
      await screenshot(page, "config-flow-done");
      step(`the flow created the entry: ${compact(text).slice(0, 160)}`);
      await finish.first().click();
      return;
    }
    const submit = dialog.getByRole("button", { name: /^(submit|next)$/i });
    if (!(await submit.count())) {
      await screenshot(page, "config-flow-ended");
      throw new Error(`the flow ended without an entry: ${compact(text)}`);
    }
    const chosen = await chooseVoice(page, dialog);
    step(`form ${form} (${title}): ${chosen ? `voice ${chosen}` : "defaults"}`);
    await screenshot(page, `config-flow-${form}`);
    await submit.first().click();
    text = await nextDialogState(page, dialog, text);
  }
  throw new Error("the config flow did not finish within 6 forms");
}

async function showResult(page) {
  await page.goto(`${url}/config/integrations/integration/alicia_tts`);
  await page.getByText(/joe/i).first().waitFor();
  await page.waitForTimeout(1000);
  await screenshot(page, "alicia-integration-page");
  await page.goto(`${url}/config/integrations/dashboard`);
  await page.getByText("Alicia TTS", { exact: true }).first().waitFor();
  await page.waitForTimeout(1000);
  await screenshot(page, "integrations-after");
  await page.goto(`${url}/config/integrations/integration/sonos`);
  await page.getByText(/kitchen/i).first().waitFor();
  await page.waitForTimeout(1000);
  await screenshot(page, "sonos-integration-page");
  // The Kitchen speaker as HA's sonos integration sees the simulated one.
  await page.getByText("Kitchen", { exact: true }).first().click();
  await page.getByText("Device info").first().waitFor();
  await page.waitForTimeout(1000);
  await screenshot(page, "sonos-kitchen-device");
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "alicia-ui-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.UI_CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(30000);
  try {
    await login(page);
    await addIntegration(page);
    await showResult(page);
  } catch (err) {
    await screenshot(page, "failure").catch(() => {});
    fs.writeFileSync(path.join(out, "failure.html"), await page.content().catch(() => ""));
    throw err;
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.log(`FAILED: ${err.stack || err}`);
  process.exit(1);
});
