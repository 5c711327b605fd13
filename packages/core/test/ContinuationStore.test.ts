import { ApprovalStore, ContinuationStore } from "@gavel/core"
import * as ContinuationStoreSuite from "@gavel/testing/ContinuationStoreSuite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

ContinuationStoreSuite.run(
  "ContinuationStore.makeMemory",
  Layer.effect(
    ContinuationStore.ContinuationStore,
    Effect.flatMap(ApprovalStore.ApprovalStore, ContinuationStore.makeMemory)
  ).pipe(Layer.provideMerge(ApprovalStore.layerMemory))
)
