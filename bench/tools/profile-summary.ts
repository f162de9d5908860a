/**
 * Summarises a Chrome/V8-format .cpuprofile (as written by `bun --cpu-prof`): the functions with
 * the most self time and the most inclusive time, with file:line. Usage:
 *   bun bench/tools/profile-summary.ts bench/profiles/CPU.*.cpuprofile [--top 25] [--last 12]
 * `--last S` keeps only the samples of the profile's last S seconds (e.g. a bench's measured window,
 * without the connection ramp before it).
 */
import { readFileSync } from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
  hitCount?: number;
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const args = process.argv.slice(2);
const topAt = args.indexOf("--top");
const top = topAt >= 0 ? Number(args[topAt + 1]) : 25;
const lastAt = args.indexOf("--last");
const lastS = lastAt >= 0 ? Number(args[lastAt + 1]) : Infinity;
const files = args.filter((a, i) => !a.startsWith("--") && (topAt < 0 || i !== topAt + 1) && (lastAt < 0 || i !== lastAt + 1));

for (const file of files) {
  const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  const at: number[] = [];
  for (let i = 0, t = p.startTime; i < p.samples.length; i++) at.push((t += p.timeDeltas[i] ?? 0));
  const fromUs = p.endTime - lastS * 1e6;
  for (let i = 0; i < p.samples.length; i++) if (at[i]! >= fromUs) selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i + 1] ?? 0));
  const name = (n: Node) => {
    const url = n.callFrame.url.replace(/^.*\/work\/main\//, "").replace(/^.*node_modules\//, "nm:");
    return `${n.callFrame.functionName || "(anonymous)"} ${url ? `${url}:${n.callFrame.lineNumber + 1}` : ""}`.trim();
  };
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    total += us;
    const n = byId.get(id)!;
    self.set(name(n), (self.get(name(n)) ?? 0) + us);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const k = name(byId.get(cur)!);
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + us);
    }
  }
  const idle = [...self].filter(([k]) => /^\(idle\)|^\(program\)|^\(garbage collector\)/.test(k));
  const busy = total - idle.filter(([k]) => k.startsWith("(idle)")).reduce((a, [, v]) => a + v, 0);
  const show = (m: Map<string, number>, title: string) => {
    console.log(`  ${title}`);
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`    ${((v / busy) * 100).toFixed(1).padStart(5)}%  ${(v / 1000).toFixed(0).padStart(6)} ms  ${k}`);
    }
  };
  console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s not idle (percentages of that)`);
  show(self, "self time");
  show(incl, "inclusive time");
}
