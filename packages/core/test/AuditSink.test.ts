import { AuditSink } from "@gavel/core"
import * as AuditSinkSuite from "@gavel/testing/AuditSinkSuite"

AuditSinkSuite.run("AuditSink.layerMemory", AuditSink.layerMemory)
