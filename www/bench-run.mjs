// Opens a benchmark page in Chromium and prints its #result JSON.
// Usage: node bench-run.mjs URL [timeout_ms]
import { launchChromium } from "./chromium.mjs";

const [url, timeout = "1200000"] = process.argv.slice(2);
const { context, close } = await launchChromium();
try {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[pageerror] ${e.message}`));
  await page.goto(url);
  await page.waitForSelector("#result", { state: "attached", timeout: Number(timeout) });
  console.log(await page.textContent("#result"));
} finally {
  await close();
}
