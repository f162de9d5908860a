import { MemoryPresence } from "../src/presence/memory.ts";
import { describePresence } from "./suites/presence.suite.ts";

describePresence("MemoryPresence", () => new MemoryPresence());
