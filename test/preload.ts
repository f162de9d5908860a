// Loaded before every test file (bunfig.toml): tests here start real servers and Redis, so the
// default per-test timeout is 30 s instead of Bun's 5 s. Tests that need less still say so.
import { setDefaultTimeout } from "bun:test";
setDefaultTimeout(30_000);
