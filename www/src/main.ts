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
