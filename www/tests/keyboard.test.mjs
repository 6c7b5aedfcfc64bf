// The shell by keyboard alone: a claim check from the first Tab to the verdict, every control on
// the way reached in the page's tab order and worked with keys.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launchChromium } from "../chromium.mjs";
import { serveBuiltSite } from "./built-site.mjs";

// The tiny model with SmolLM2's vocabulary: what is checked does not depend on the model's size.
const MODEL = "fixtures/smollm2-vocab-tiny-q8_0.gguf";

const site = serveBuiltSite();

/** Presses Tab until `selector` has the focus; fails past `limit` presses. */
async function tabTo(page, selector, limit = 200) {
  for (let presses = 0; presses < limit; presses++) {
    if (await page.evaluate((s) => document.activeElement === document.querySelector(s), selector)) return presses;
    await page.keyboard.press("Tab");
  }
  assert.fail(`${selector} is not reached by ${limit} presses of Tab`);
}

test("a claim check by keyboard alone", { timeout: 600_000 }, async () => {
  const { context, close } = await launchChromium([], { webgpu: false });
  try {
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${site.origin}/?model=${MODEL}&backend=cpu`);
    await page.waitForSelector("#model-card[data-state=ready]", { timeout: 120_000 });

    // The navigation link moves the focus to the panel.
    await tabTo(page, 'nav a[href="#claim-panel"]');
    await page.keyboard.press("Enter");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "claim-panel");
    assert.equal(await page.getAttribute('nav a[href="#claim-panel"]', "aria-current"), "true");
    await tabTo(page, "#claim-task");
    await page.keyboard.press("ArrowDown");
    assert.equal(await page.inputValue("#claim-task"), "conspiracy");
    await page.keyboard.press("ArrowUp");
    assert.equal(await page.inputValue("#claim-task"), "fmd");
    await tabTo(page, "#claim-affect");
    await page.keyboard.press("Space");
    assert.equal(await page.isChecked("#claim-affect"), true);
    await page.keyboard.press("Space");
    // The writing settings open with Enter on their summary, and a number field takes keys.
    await tabTo(page, "#claim-writing summary");
    await page.keyboard.press("Enter");
    assert.equal(await page.getAttribute("#claim-writing", "open"), "");
    await tabTo(page, "#claim-sentences");
    await page.keyboard.press("Control+A");
    await page.keyboard.type("2");
    await tabTo(page, "#claim-text");
    await page.keyboard.type("Lowmoor Bank appointed its chief financial officer as its new chief executive.");
    await tabTo(page, "#claim-context");
    await page.keyboard.type("Lowmoor Bank named Owen Farrant, head of its retail division, as chief executive.");
    await tabTo(page, "#claim-form button[type=submit]");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => /\S/.test(document.querySelector("#claim-verdict")?.textContent ?? ""), null, { timeout: 300_000 });
    await page.waitForSelector("#claim-status[data-state=ready], #claim-status[data-state=error]", { timeout: 300_000 });
    assert.equal(await page.getAttribute("#claim-status", "data-state"), "ready");
    assert.match(await page.textContent("#claim-verdict"), /True|False|NEI/);
    assert.deepEqual(errors, []);
  } finally {
    await close();
  }
});
