/**
 * Protocol probes over a raw TCP socket. Each breaks RFC 6455 (or the SPEC's
 * text-only rule) in one way and must get the RFC close code from the server, whose process
 * lives on; a bystander chats throughout. Pings are answered with their payload, and
 * permessage-deflate is never negotiated.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Op, RawPeer, closePayload, encodeFrame, type FrameSpec } from "../support/raw-ws.ts";
import { TestClient, closeAll } from "../support/client.ts";
import { session, startServer, type TestServer } from "../support/server.ts";
import { openSockets } from "../support/metrics.ts";

let server: TestServer;
let bystander: TestClient;
let cookie: string;
const peers = new Set<RawPeer>();

beforeAll(async () => {
  server = await startServer({ MAX_CONNECTIONS_PER_USER: "100" });
  cookie = (await session(server, "alice")).cookie;
  const carol = await session(server, "carol");
  bystander = await TestClient.connect(server.wsUrl, { cookie: carol.cookie });
  await bystander.subscribe("room:probes");
}, 30_000);

afterAll(async () => {
  for (const p of peers) p.destroy();
  await closeAll(bystander ? [bystander] : []);
  server?.kill();
});

/** An authenticated raw socket (cookie), past its welcome. */
async function authed(headers: Record<string, string> = {}): Promise<RawPeer> {
  const peer = await RawPeer.open(server.wsUrl, { Cookie: cookie, ...headers });
  peers.add(peer);
  expect(peer.head.status).toBe(101);
  await peer.waitFrame((f) => f.opcode === Op.text && f.payload.includes('"welcome"'), 3000, "welcome");
  return peer;
}

async function bystanderStillChats(): Promise<void> {
  expect(bystander.close).toBeNull();
  const ack = await bystander.publish("room:probes", { still: "here" });
  const msgs = await bystander.waitMessages("room:probes", 1);
  expect(msgs.at(-1)!.seq).toBe(ack.seq);
}


const text = (payload: string | Uint8Array, more: Partial<FrameSpec> = {}): FrameSpec => ({ opcode: Op.text, payload, ...more });

const probes: { name: string; frames: FrameSpec[]; code: number }[] = [
  { name: "an unmasked client frame → 1002", frames: [text('{"type":"ping"}', { mask: false })], code: 1002 },
  { name: "RSV1 set (no extension negotiated) → 1002", frames: [text('{"type":"ping"}', { rsv: 0b100 })], code: 1002 },
  { name: "RSV2 and RSV3 set → 1002", frames: [text('{"type":"ping"}', { rsv: 0b011 })], code: 1002 },
  { name: "unknown data opcode 0x3 → 1002", frames: [{ opcode: 0x3, payload: "x" }], code: 1002 },
  { name: "unknown control opcode 0xB → 1002", frames: [{ opcode: 0xb, payload: "x" }], code: 1002 },
  { name: "a fragmented ping (control frame without FIN) → 1002", frames: [{ opcode: Op.ping, payload: "x", fin: false }], code: 1002 },
  { name: "a ping of 126 bytes (control frames are ≤ 125) → 1002", frames: [{ opcode: Op.ping, payload: "x".repeat(126) }], code: 1002 },
  { name: "a continuation frame with no message started → 1002", frames: [{ opcode: Op.continuation, payload: "x" }], code: 1002 },
  { name: "a new text frame inside a fragmented message → 1002", frames: [text('{"type":', { fin: false }), text('"ping"}')], code: 1002 },
  { name: "a close frame with a reserved code (999) → 1002", frames: [{ opcode: Op.close, payload: closePayload(999) }], code: 1002 },
  { name: "invalid UTF-8 in a text frame → 1007", frames: [text(new Uint8Array([0x22, 0xc3, 0x28, 0x22]))], code: 1007 },
  { name: "a UTF-16 surrogate encoded as UTF-8 (CESU) → 1007", frames: [text(new Uint8Array([0x22, 0xed, 0xa0, 0x80, 0x22]))], code: 1007 },
  { name: "invalid UTF-8 split across fragments → 1007", frames: [text(new Uint8Array([0x22, 0xe2]), { fin: false }), { opcode: Op.continuation, payload: new Uint8Array([0x28, 0xa1, 0x22]) }], code: 1007 },
  { name: "a binary frame → 1003", frames: [{ opcode: Op.binary, payload: new Uint8Array([1, 2, 3]) }], code: 1003 },
  { name: "a length field of 2^63-1 → 1009", frames: [], code: 1009 },
];

describe("RFC 6455 violations get the RFC close code; the process and the bystander carry on", () => {
  for (const probe of probes) {
    test(probe.name, async () => {
      const peer = await authed();
      if (probe.frames.length === 0) {
        const head = Buffer.alloc(14);
        head[0] = 0x81;
        head[1] = 0xff;
        head.writeBigUInt64BE(2n ** 63n - 1n, 2);
        peer.send(head);
      }
      for (const f of probe.frames) peer.send(encodeFrame(f));
      const closed = await peer.closed(3000);
      expect(closed.code).toBe(probe.code);
      // The server lets go of the TCP connection too, not just the WebSocket.
      await peer.until(() => peer.ended, 3000, "the TCP connection to end");
      expect(server.proc.exitCode).toBeNull();
    });
  }

  test("anything but auth as the first frame of an unauthenticated socket → 1008", async () => {
    const peer = await RawPeer.open(server.wsUrl);
    peers.add(peer);
    peer.sendText('{"type":"subscribe","topic":"room:probes"}');
    expect((await peer.closed()).code).toBe(1008);
  });

  test("after every probe: the process is alive, every probe socket is freed, the bystander never noticed", async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    let open = await openSockets(server);
    for (let i = 0; i < 40 && open !== 1; i++) {
      await Bun.sleep(50);
      open = await openSockets(server);
    }
    expect(open).toBe(1); // the bystander
    await bystanderStillChats();
  });
});

describe("control frames and extensions", () => {
  test("a ping is answered with a pong carrying its payload, and the socket stays usable", async () => {
    const peer = await authed();
    const payload = new Uint8Array([0, 1, 2, 250, 251, 252, ...new TextEncoder().encode("hello-ping")]);
    peer.sendFrame({ opcode: Op.ping, payload });
    const pong = await peer.waitFrame((f) => f.opcode === Op.pong, 3000, "pong");
    expect([...pong.payload]).toEqual([...payload]);
    // An empty ping and a maximal one (125 bytes) too.
    peer.sendFrame({ opcode: Op.ping, payload: "" });
    peer.sendFrame({ opcode: Op.ping, payload: "p".repeat(125) });
    await peer.until(() => peer.frames.filter((f) => f.opcode === Op.pong).length >= 3, 3000, "three pongs");
    const pongs = peer.frames.filter((f) => f.opcode === Op.pong);
    expect(pongs[1]!.payload.length).toBe(0);
    expect(pongs[2]!.payload.toString()).toBe("p".repeat(125));
    peer.sendText('{"type":"ping","ref":5}');
    await peer.until(() => peer.json().find((f) => f.type === "pong" && f.ref === 5), 3000, "application pong");
    expect(peer.closeFrame).toBeNull();
  });

  test("permessage-deflate is not negotiated, even when offered; a compressed frame is then a protocol error", async () => {
    for (const offer of ["permessage-deflate", "permessage-deflate; client_max_window_bits", "permessage-deflate; server_no_context_takeover; client_no_context_takeover, x-webkit-deflate-frame"]) {
      const peer = await authed({ "Sec-WebSocket-Extensions": offer });
      expect(peer.head.headers["sec-websocket-extensions"]).toBeUndefined();
      // A client that compresses anyway sets RSV1: refused, because nothing was negotiated.
      peer.sendFrame({ opcode: Op.text, payload: new Uint8Array([0xaa, 0x56, 0x2a, 0xa9, 0x2c, 0x48, 0x55, 0xb2, 0x52, 0x2a, 0xc8, 0xcc, 0x4b, 0x57, 0xaa, 0x05, 0x00]), rsv: 0b100 });
      expect((await peer.closed()).code).toBe(1002);
    }
    await bystanderStillChats();
  });

  test("a well-formed close from the client is answered with a close, and the socket is freed", async () => {
    const peer = await authed();
    peer.sendFrame({ opcode: Op.close, payload: closePayload(1000, "bye") });
    expect((await peer.closed()).code).toBe(1000);
    await peer.until(() => peer.ended, 3000, "the TCP connection to end");
  });
});
