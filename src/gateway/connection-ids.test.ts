import { describe, expect, test } from "bun:test";
import { nextConnectionId } from "./connection-ids.ts";

describe("connection ids", () => {
  test("unique within the process, one prefix, and short", () => {
    const ids = Array.from({ length: 20_000 }, () => nextConnectionId());
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(ids.map((id) => id.split(".")[0])).size).toBe(1);
    for (const id of ids) expect(id).toMatch(/^[0-9a-z]{10}\.[0-9a-z]{1,6}$/);
  });

  test("another process draws another prefix", async () => {
    const here = nextConnectionId().split(".")[0];
    const proc = Bun.spawn(["bun", "-e", `import { nextConnectionId } from ${JSON.stringify(import.meta.dir + "/connection-ids.ts")}; console.log(nextConnectionId())`], { stdout: "pipe" });
    const there = (await new Response(proc.stdout).text()).trim();
    expect(there).toMatch(/^[0-9a-z]{10}\.1$/);
    expect(there.split(".")[0]).not.toBe(here);
  });
});
