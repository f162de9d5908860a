/**
 * The Cluster client of src/redis/connection.ts (auto-pipelined, as the broker's and the auth-reads'
 * connections are) when a slot migrates: a command refused with -TRYAGAIN (its keys split between
 * the two nodes) until ioredis's `maxRedirections` is nearly spent, then with -ASK (its keys moved
 * on). ioredis 6.0.0 rebuilt the pipeline's queue with an ASKING before each command and then, the
 * redirections spent, settled it with the last round's replies compacted over that longer queue:
 * the autopipeline's callbacks were called with `...undefined`, a TypeError thrown on a later tick
 * that crashed the Switchboard process (5 of 7 runs of test/redis-cluster-reshard.test.ts) and
 * left the command unsettled. Fixed in patches/ioredis@6.0.0.patch: the command is refused (the
 * caller's redirection rules, src/redis/redirections.ts, take it from there).
 *
 * A real socket with a scripted cluster node behind it: a real Redis cannot be made to answer
 * exactly eight TRYAGAIN then an ASK on demand (the window is a race with MIGRATE).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { closeConnection, connectWithin, createClusterConnection } from "../src/redis/connection.ts";
import { INCOMPLETE, parseReply, type Reply } from "../src/redis/resp.ts";

const NODE_ID = "a".repeat(40);
const bulk = (text: string) => `$${Buffer.byteLength(text)}\r\n${text}\r\n`;

/** One cluster node owning every slot; GET answers as `answerGet` says (n: the how-manieth GET). */
function scriptedNode(answerGet: (n: number, port: number) => string) {
  let gets = 0;
  const buffers = new WeakMap<Socket<undefined>, Buffer>();
  const answer = (args: string[], port: number): string => {
    const name = args[0]!.toUpperCase();
    if (name === "CLUSTER" && args[1]!.toUpperCase() === "SLOTS") return `*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n${bulk("127.0.0.1")}:${port}\r\n${bulk(NODE_ID)}`;
    if (name === "CLUSTER") return bulk("cluster_state:ok\r\n");
    if (name === "INFO") return bulk("# Server\r\nloading:0\r\n");
    if (name === "GET") return answerGet(++gets, port);
    return "+OK\r\n";
  };
  const server: TCPSocketListener<undefined> = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(socket, chunk) {
        let data = Buffer.concat([buffers.get(socket) ?? Buffer.alloc(0), chunk]);
        let at = 0;
        for (;;) {
          const parsed = parseReply(data, at);
          if (parsed === INCOMPLETE) break;
          const [command, next] = parsed as [Reply[], number];
          socket.write(answer(command.map(String), server.port));
          at = next;
        }
        buffers.set(socket, data.subarray(at));
      },
    },
  });
  return { server, gets: () => gets };
}

let node: ReturnType<typeof scriptedNode>;
beforeAll(() => {
  // maxRedirections is 8 (connection.ts): the ninth refusal is the last one ioredis follows.
  node = scriptedNode((n, port) => (n <= 8 ? "-TRYAGAIN Multiple keys request during rehashing of slot\r\n" : n === 9 ? `-ASK 15495 127.0.0.1:${port}\r\n` : bulk("v")));
});
afterAll(() => node.server.stop(true));

test("a command refused with TRYAGAIN until its redirections are spent, the last one an ASK, is refused; the process does not crash", async () => {
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);
  process.on("uncaughtException", onUncaught);
  const client = createClusterConnection(`redis://127.0.0.1:${node.server.port}`, { name: "redirections-test", autoPipelining: true, commandTimeoutMs: 2000 });
  try {
    expect(await connectWithin(client, 2000)).toBe(true);
    const outcome = await Promise.race([
      client.get("a").then((v) => `value ${v}`, (e: Error) => `refused: ${e.message}`),
      Bun.sleep(3000).then(() => "unsettled after 3 s"),
    ]);
    await Bun.sleep(50); // the TypeError came a tick after the pipeline settled
    expect(uncaught.map(String)).toEqual([]);
    expect(outcome).toStartWith("refused: ASK 15495");
    expect(node.gets()).toBe(9);
  } finally {
    process.off("uncaughtException", onUncaught);
    await closeConnection(client);
  }
});
