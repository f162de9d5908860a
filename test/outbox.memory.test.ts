/** MemoryOutbox: the shared Outbox suite. */
import { MemoryOutbox } from "../src/webhooks/memory-outbox.ts";
import { describeOutbox } from "./suites/outbox.suite.ts";

describeOutbox("MemoryOutbox", () => new MemoryOutbox());
