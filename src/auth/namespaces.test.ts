/**
 * SPEC §5 namespace configuration: defaults, built-ins, replacement, and the one-line sentence
 * each bad field gets (the process's refusal to start is tested in test/namespaces-config.test.ts).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadNamespaces, type NamespaceSettings } from "./namespaces.ts";
import { ConfigError, loadConfig } from "../config.ts";

const BASE: NamespaceSettings = { historySize: 100, historyTtlS: 300 };
const dir = mkdtempSync(join(tmpdir(), "sb-ns-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function load(namespaces: unknown, extra: Partial<NamespaceSettings> = {}) {
  return loadNamespaces({ ...BASE, namespaces: typeof namespaces === "string" ? namespaces : JSON.stringify(namespaces), ...extra });
}

function refusal(namespaces: unknown, extra: Partial<NamespaceSettings> = {}): string {
  try {
    load(namespaces, extra);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message.split("\n")).toHaveLength(1);
    return message;
  }
  throw new Error("expected a ConfigError");
}

describe("defaults", () => {
  test("without NAMESPACES: room, user, broadcast as the seed", () => {
    const ns = loadNamespaces(BASE);
    expect(ns.get("room")).toEqual({ name: "room", subscribe: "any", publish: "any", presence: true, joinLeave: true, history: { size: 100, ttlS: 300 }, delivery: "ordered", webhook: false });
    expect(ns.get("user")).toMatchObject({ subscribe: "owner", publish: "any", presence: false });
    expect(ns.get("broadcast")).toMatchObject({ subscribe: "any", publish: "server", presence: false });
    expect([...ns.all].map((n) => n.name).sort()).toEqual(["broadcast", "room", "user"]);
  });

  test("an option left out takes the option default: caps, caps, no presence, joinLeave, HISTORY_*, ordered, no webhook", () => {
    const ns = load({ doc: {} }, { historySize: 7, historyTtlS: 9 });
    expect(ns.get("doc")).toEqual({ name: "doc", subscribe: "caps", publish: "caps", presence: false, joinLeave: true, history: { size: 7, ttlS: 9 }, delivery: "ordered", webhook: false });
    expect(ns.get("room")!.history).toEqual({ size: 7, ttlS: 9 });
  });

  test("history may set one of size and ttlS; size 0 keeps none", () => {
    expect(load({ a: { history: { size: 0 } } }).get("a")!.history).toEqual({ size: 0, ttlS: 300 });
    expect(load({ a: { history: { ttlS: 5 } } }).get("a")!.history).toEqual({ size: 100, ttlS: 5 });
  });

  test("a redefined built-in is replaced whole; the others stay", () => {
    const ns = load({ room: { subscribe: "caps" } });
    expect(ns.get("room")).toMatchObject({ subscribe: "caps", publish: "caps", presence: false });
    expect(ns.get("user")).toMatchObject({ subscribe: "owner", publish: "any" });
  });

  test("the namespace of a topic is the part before its first colon", () => {
    const ns = load({ doc: {} });
    expect(ns.of("doc:a:b")?.name).toBe("doc");
    expect(ns.of("docs:a")).toBeNull();
    expect(ns.of("doc")).toBeNull();
    expect(ns.of(":doc")).toBeNull();
  });

  test("NAMESPACES_FILE reads the same JSON from a file", () => {
    const path = join(dir, "ns.json");
    writeFileSync(path, JSON.stringify({ orders: { subscribe: "owner", publish: "server", webhook: true } }));
    expect(loadNamespaces({ ...BASE, namespacesFile: path }).get("orders")).toMatchObject({ subscribe: "owner", publish: "server", webhook: true });
  });
});

describe("a bad value is one line naming the field", () => {
  const cases: [string, unknown, string][] = [
    ["not JSON", "{room:", "NAMESPACES is not valid JSON"],
    ["an array", [], "NAMESPACES must be a JSON object from namespace names to options"],
    ["options not an object", { doc: "caps" }, "NAMESPACES.doc must be an object of namespace options"],
    ["a bad subscribe", { doc: { subscribe: "server" } }, "NAMESPACES.doc.subscribe must be one of any, owner, caps, app, none"],
    ["a bad publish", { doc: { publish: "none" } }, "NAMESPACES.doc.publish must be one of any, owner, caps, app, server"],
    ["presence not a boolean", { doc: { presence: "yes" } }, "NAMESPACES.doc.presence must be true or false"],
    ["joinLeave not a boolean", { doc: { joinLeave: 1 } }, "NAMESPACES.doc.joinLeave must be true or false"],
    ["webhook not a boolean", { doc: { webhook: null } }, "NAMESPACES.doc.webhook must be true or false"],
    ["a bad delivery", { doc: { delivery: "fast" } }, "NAMESPACES.doc.delivery must be ordered or ephemeral"],
    ["history not an object", { doc: { history: 5 } }, "NAMESPACES.doc.history must be an object {size, ttlS}"],
    ["history size negative", { doc: { history: { size: -1 } } }, "NAMESPACES.doc.history.size must be at least 0"],
    ["history size fractional", { doc: { history: { size: 1.5 } } }, "NAMESPACES.doc.history.size must be a whole number"],
    ["history ttlS 0", { doc: { history: { ttlS: 0 } } }, "NAMESPACES.doc.history.ttlS must be at least 1"],
    ["an unknown option", { doc: { presense: true } }, "NAMESPACES.doc.presense is not an option"],
    ["an unknown history field", { doc: { history: { max: 3 } } }, "NAMESPACES.doc.history.max is not an option"],
    ["a name with a colon", { "doc:x": {} }, 'NAMESPACES names a namespace "doc:x"'],
    ["an empty name", { "": {} }, 'NAMESPACES names a namespace ""'],
  ];
  for (const [name, value, sentence] of cases) {
    test(name, () => {
      expect(refusal(value)).toStartWith(`invalid configuration: ${sentence}`);
    });
  }

  test("`app` without AUTHZ_URL names the namespace and AUTHZ_URL", () => {
    expect(refusal({ typing: { subscribe: "app" } })).toBe('invalid configuration: NAMESPACES.typing uses "app", which needs AUTHZ_URL (and WEBHOOK_SECRET to sign its calls)');
    expect(load({ typing: { publish: "app" } }, { authzUrl: "http://127.0.0.1:9/authz" }).get("typing")!.publish).toBe("app");
  });

  test("NAMESPACES_FILE that cannot be read, or holds bad JSON, names NAMESPACES_FILE", () => {
    expect(() => loadNamespaces({ ...BASE, namespacesFile: join(dir, "missing.json") })).toThrow(/^invalid configuration: NAMESPACES_FILE cannot be read \(ENOENT/);
    const path = join(dir, "bad.json");
    writeFileSync(path, JSON.stringify({ doc: { delivery: 1 } }));
    expect(() => loadNamespaces({ ...BASE, namespacesFile: path })).toThrow("invalid configuration: NAMESPACES_FILE.doc.delivery must be ordered or ephemeral");
  });
});

describe("the demo's private namespace (only for the demo as shipped)", () => {
  test("demo: the built-ins plus `private` (caps, caps, presence); otherwise not there", () => {
    const demo = loadNamespaces({ ...BASE, demo: true });
    expect(demo.get("private")).toMatchObject({ subscribe: "caps", publish: "caps", presence: true, delivery: "ordered" });
    expect([...demo.all].map((ns) => ns.name).sort()).toEqual(["broadcast", "private", "room", "user"]);
    expect(loadNamespaces(BASE).get("private")).toBeNull();
  });
});

describe("Config.demo: private rooms only in the demo as shipped", () => {
  test("development with the demo users and no NAMESPACES; not with USERS, NAMESPACES, NAMESPACES_FILE or in production", () => {
    const secret = "x".repeat(40);
    expect(loadConfig({}).demo).toBe(true);
    expect(loadConfig({ NODE_ENV: "test" }).demo).toBe(true);
    expect(loadConfig({ USERS: "alice:pw" }).demo).toBe(false);
    expect(loadConfig({ NAMESPACES: "{}" }).demo).toBe(false);
    expect(loadConfig({ NAMESPACES_FILE: "/dev/null" }).demo).toBe(false);
    expect(loadConfig({ NODE_ENV: "production", SESSION_SECRET: secret }).demo).toBe(false);
  });
});
