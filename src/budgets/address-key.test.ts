import { describe, expect, test } from "bun:test";
import { addressKey } from "./address-key.ts";

describe("addressKey", () => {
  test("IPv4 as it is; IPv6 by its /64, however it is written; IPv4-mapped as its IPv4", () => {
    expect(addressKey("198.51.100.7")).toBe("198.51.100.7");
    expect(addressKey("2001:db8:1:2::1")).toBe("2001:db8:1:2::/64");
    expect(addressKey("2001:DB8:1:2:ffff:0:0:9")).toBe("2001:db8:1:2::/64");
    expect(addressKey("2001:db8:1:3::1")).toBe("2001:db8:1:3::/64");
    expect(addressKey("::1")).toBe("0:0:0:0::/64");
    expect(addressKey("::ffff:198.51.100.7")).toBe("198.51.100.7");
    expect(addressKey("::ffff:c633:6408")).toBe("198.51.100.8");
  });

  test("a value that is no address is its own key", () => {
    expect(addressKey("unknown")).toBe("unknown");
    expect(addressKey("not:an:address")).toBe("not:an:address");
  });
});
