import { setUpClaimPanel } from "./claim.js";
import { setUpExamPanel } from "./exam.js";
import { setUpImagePanel } from "./image.js";
import { restoreInsideView, setUpInsidePanel } from "./inside.js";
import { setUpModelPanel } from "./model.js";
import { setUpPatchPanel } from "./patch.js";
import { setUpRewardsPanel } from "./rewards.js";
import { setUpTablePanel } from "./table.js";
import { followPanels } from "./view-state.js";

setUpInsidePanel();
setUpPatchPanel();
setUpImagePanel();
setUpClaimPanel();
setUpExamPanel();
setUpRewardsPanel();
setUpTablePanel();
followPanels();
void setUpModelPanel().then(restoreInsideView);
// After the first visit, the page and the engine open from this origin's cache with the network off.
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("sw.js").catch((e: unknown) => console.warn("glassbox: offline use is off:", e));
}
