/**
 * The key under which per-address limits count a client (MAX_CONNECTIONS_PER_IP, the login
 * lockout and its password-check turns): an IPv4 address as it is; an IPv6 address by its /64.
 * One line or host is handed a whole /64 and can send from a fresh address every time, so counted
 * per address it would get fresh limits per request. An IPv4-mapped IPv6 address
 * (`::ffff:a.b.c.d`, what a dual-stack listener reports) is its IPv4 address. Anything that does
 * not parse as IPv6 (a proxy header's odd value) is its own key. Logs keep the whole address.
 */
export function addressKey(ip: string): string {
  if (!ip.includes(":")) return ip;
  const groups = ipv6Groups(ip);
  if (groups === null) return ip;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join(".");
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, or null when it is not one. */
function ipv6Groups(ip: string): number[] | null {
  let canonical: string;
  try {
    canonical = new URL(`http://[${ip}]/`).hostname.slice(1, -1); // WHATWG URL: compressed, hex, lower case
  } catch {
    return null;
  }
  const [head = "", tail] = canonical.split("::");
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((g) => Number.parseInt(g, 16)));
  const front = parse(head);
  const back = tail === undefined ? [] : parse(tail);
  return [...front, ...Array<number>(8 - front.length - back.length).fill(0), ...back];
}
