import { MemoryBroker } from "../src/broker/memory.ts";
import { describeBroker } from "./suites/broker.suite.ts";

describeBroker("MemoryBroker", (options) => new MemoryBroker(options));
