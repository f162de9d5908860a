import { expect, test } from "bun:test";
import { Heartbeat } from "./heartbeat.ts";
import type { DeploymentRegistry, InstanceInfo } from "./registry.ts";

const status: InstanceInfo = { id: "p1", region: "local", connections: 0, topics: 0, startedAt: 0, draining: false };

/** A registry whose first `failures` reports fail (Redis not reachable yet). */
function registry(failures: number): DeploymentRegistry & { reports: number } {
  return {
    reports: 0,
    async report() {
      this.reports++;
      if (this.reports <= failures) throw new Error("unreachable");
    },
    async remove() {},
    async instances() {
      return [];
    },
    async topics() {
      return [];
    },
    async close() {},
  };
}

test("listed once the first report lands; a failed first report is tried again within ~100 ms, not after the interval", async () => {
  const reg = registry(2);
  let listedAt: number | null = null;
  const started = performance.now();
  const beat = new Heartbeat(reg, () => ({ status, topics: new Map() }), () => {}, 10_000, () => (listedAt ??= performance.now()));
  beat.start();
  await Bun.sleep(600);
  await beat.stop("p1");
  expect(reg.reports).toBeGreaterThanOrEqual(3);
  expect(listedAt).not.toBeNull();
  expect(listedAt! - started).toBeLessThan(500);
});

test("never listed while every report fails; stop() leaves no retry behind", async () => {
  const reg = registry(Infinity);
  let listed = false;
  const beat = new Heartbeat(reg, () => ({ status, topics: new Map() }), () => {}, 10_000, () => (listed = true));
  beat.start();
  await Bun.sleep(250);
  await beat.stop("p1");
  const reports = reg.reports;
  await Bun.sleep(300);
  expect(listed).toBe(false);
  expect(reg.reports).toBe(reports);
});

test("a failed report is logged once per outage, with what Redis said (the error's cause) for the operator", async () => {
  const lines: Record<string, unknown>[] = [];
  const failing: DeploymentRegistry = {
    ...registry(Infinity),
    async report() {
      throw new Error("deployment registry: the broker is unreachable; retry", { cause: new Error("Command timed out") });
    },
  };
  const beat = new Heartbeat(failing, () => ({ status, topics: new Map() }), (_message, fields) => lines.push(fields), 10_000, () => {}, 0);
  beat.start();
  await Bun.sleep(250);
  await beat.stop("p1");
  expect(lines).toEqual([{ error: "deployment registry: the broker is unreachable; retry", cause: "Command timed out" }]);
});

test("at start-up, first reports that fail while the connection comes up are retried without a warning; past the grace, one warning", async () => {
  const quiet: string[] = [];
  const soon = registry(2); // a connection writable after ~200 ms
  const starting = new Heartbeat(soon, () => ({ status, topics: new Map() }), (message) => quiet.push(message), 10_000, () => {}, 1000);
  starting.start();
  await Bun.sleep(400);
  await starting.stop("p1");
  expect(soon.reports).toBeGreaterThanOrEqual(3);
  expect(quiet).toEqual([]);

  const warned: string[] = [];
  const down = registry(Infinity);
  const stuck = new Heartbeat(down, () => ({ status, topics: new Map() }), (message) => warned.push(message), 10_000, () => {}, 200);
  stuck.start();
  await Bun.sleep(600);
  await stuck.stop("p1");
  expect(warned).toEqual(["deployment heartbeat failed; retrying"]);
});
