import { ApprovalStore } from "@gavel/core"
import { ApprovalStoreSuite } from "@gavel/testing"

ApprovalStoreSuite.run("ApprovalStore.layerMemory", ApprovalStore.layerMemory)
