/**
 * A fixed-bucket latency histogram in microseconds, cheap to record into and to merge across
 * processes: 10 µs buckets up to 100 ms, 1 ms buckets up to 100 s, one overflow bucket.
 * Percentiles are exact to the bucket (≤ 10 µs below 100 ms, ≤ 1 ms above); `max` is exact.
 */
const FINE = 10_000; // 0..100 ms in 10 µs steps
const COARSE = 99_900; // 100 ms..100 s in 1 ms steps
const SIZE = FINE + COARSE + 1;

export class Histogram {
  counts = new Uint32Array(SIZE);
  n = 0;
  max = 0;
  sum = 0;

  record(us: number): void {
    if (us < 0) us = 0;
    const i = us < 100_000 ? Math.floor(us / 10) : Math.min(FINE + Math.floor((us - 100_000) / 1000), SIZE - 1);
    this.counts[i]!++;
    this.n++;
    this.sum += us;
    if (us > this.max) this.max = us;
  }

  /** The value (µs, upper edge of its bucket, capped at max) below which a fraction `q` lies. */
  quantile(q: number): number {
    if (this.n === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(upperEdge(i), this.max);
    }
    return this.max;
  }

  /** Sparse form for IPC: [n, max, sum, idx, count, idx, count, ...]. */
  toJSON(): number[] {
    const out = [this.n, this.max, this.sum];
    for (let i = 0; i < SIZE; i++) if (this.counts[i]) out.push(i, this.counts[i]!);
    return out;
  }

  merge(sparse: number[]): this {
    this.n += sparse[0]!;
    this.max = Math.max(this.max, sparse[1]!);
    this.sum += sparse[2]!;
    for (let k = 3; k < sparse.length; k += 2) this.counts[sparse[k]!]! += sparse[k + 1]!;
    return this;
  }

  /** p50/p90/p99/max in milliseconds, rounded to 0.01. */
  summaryMs(): { p50: number; p90: number; p99: number; max: number; mean: number } {
    const ms = (us: number) => (Number.isNaN(us) ? NaN : Math.round(us / 10) / 100);
    return {
      p50: ms(this.quantile(0.5)),
      p90: ms(this.quantile(0.9)),
      p99: ms(this.quantile(0.99)),
      max: ms(this.n ? this.max : NaN),
      mean: ms(this.n ? this.sum / this.n : NaN),
    };
  }
}

function upperEdge(i: number): number {
  return i < FINE ? (i + 1) * 10 : 100_000 + (i - FINE + 1) * 1000;
}

export function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}
