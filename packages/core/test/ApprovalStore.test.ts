import { ApprovalStore } from "@gavel/core"
import * as ApprovalStoreSuite from "@gavel/testing/ApprovalStoreSuite"

ApprovalStoreSuite.run("ApprovalStore.layerMemory", ApprovalStore.layerMemory)
