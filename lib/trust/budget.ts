/**
 * Verification budgets (docs/PROTOCOL.md §6.7): token buckets, one per peer and one global, for
 * post-quantum signature checks and for decapsulations, so a flood of forged envelopes costs the
 * receiver a bounded amount of CPU and cannot starve the other peers' traffic.
 *
 * A check takes one token from its peer's bucket and one from the global bucket before it runs,
 * and gives both back when it succeeds: the budgets count *failed* checks (forgeries), so
 * legitimate traffic, however fast, never runs a bucket dry. Checks still running hold their
 * token, so a burst of forgeries arriving at once is bounded too. A check that finds either
 * bucket empty is not run: the envelope is refused with `budget`.
 *
 * Pure: time comes in as a parameter (ms), as everywhere in the protocol core.
 */

export type BudgetKind = 'verify' | 'decapsulate';

export interface BucketSpec {
  /** Tokens added per second. */
  readonly rate: number;
  /** Bucket size: the failed checks allowed at once. */
  readonly burst: number;
}

export interface BudgetOptions {
  readonly verify: { readonly perPeer: BucketSpec; readonly global: BucketSpec };
  readonly decapsulate: { readonly perPeer: BucketSpec; readonly global: BucketSpec };
  /** Peer buckets kept (least recently used dropped first; a dropped bucket restarts full). */
  readonly maxTrackedPeers: number;
}

/**
 * Defaults: a peer may fail 1024 checks at once and 64 per second after that; all peers
 * together 4096 at once and 256 per second (about a quarter of one core with Falcon-512 in
 * JavaScript, 1.1 ms per check). Legitimate traffic gives its tokens back, so the bursts only
 * need to cover checks in flight at once.
 */
export const DEFAULT_BUDGET: BudgetOptions = Object.freeze({
  verify: Object.freeze({ perPeer: Object.freeze({ rate: 64, burst: 1024 }), global: Object.freeze({ rate: 256, burst: 4096 }) }),
  decapsulate: Object.freeze({ perPeer: Object.freeze({ rate: 64, burst: 1024 }), global: Object.freeze({ rate: 256, burst: 4096 }) }),
  maxTrackedPeers: 4096,
});

export interface BudgetOverrides {
  verify?: { perPeer?: Partial<BucketSpec>; global?: Partial<BucketSpec> };
  decapsulate?: { perPeer?: Partial<BucketSpec>; global?: Partial<BucketSpec> };
  maxTrackedPeers?: number;
}

function spec(base: BucketSpec, o: Partial<BucketSpec> | undefined, name: string): BucketSpec {
  const out = { ...base, ...(o ?? {}) };
  if (typeof out.rate !== 'number' || !(out.rate >= 0 && out.rate <= 1e9)) throw new Error(`budget ${name} rate must be from 0 to 1e9 per second`);
  if (!Number.isInteger(out.burst) || out.burst < 1 || out.burst > 1e9) throw new Error(`budget ${name} burst must be an integer from 1 to 1e9`);
  return Object.freeze(out);
}

/** Merges overrides into the defaults; a nonsensical value is a local error (throws). */
export function resolveBudget(o: BudgetOverrides = {}): BudgetOptions {
  const maxTrackedPeers = o.maxTrackedPeers ?? DEFAULT_BUDGET.maxTrackedPeers;
  if (!Number.isInteger(maxTrackedPeers) || maxTrackedPeers < 1 || maxTrackedPeers > 1_000_000) {
    throw new Error('budget maxTrackedPeers must be an integer from 1 to 1000000');
  }
  return Object.freeze({
    verify: Object.freeze({
      perPeer: spec(DEFAULT_BUDGET.verify.perPeer, o.verify?.perPeer, 'verify.perPeer'),
      global: spec(DEFAULT_BUDGET.verify.global, o.verify?.global, 'verify.global'),
    }),
    decapsulate: Object.freeze({
      perPeer: spec(DEFAULT_BUDGET.decapsulate.perPeer, o.decapsulate?.perPeer, 'decapsulate.perPeer'),
      global: spec(DEFAULT_BUDGET.decapsulate.global, o.decapsulate?.global, 'decapsulate.global'),
    }),
    maxTrackedPeers,
  });
}

/** A token bucket; time in ms, never going back (an older `now` adds nothing). */
export class TokenBucket {
  private tokens: number;
  private last: number | undefined;

  constructor(readonly spec: BucketSpec) {
    this.tokens = spec.burst;
  }

  private refill(now: number): void {
    if (this.last === undefined) {
      this.last = now;
      return;
    }
    if (now <= this.last) return;
    this.tokens = Math.min(this.spec.burst, this.tokens + ((now - this.last) * this.spec.rate) / 1000);
    this.last = now;
  }

  available(now: number): number {
    this.refill(now);
    return this.tokens;
  }

  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  give(): void {
    this.tokens = Math.min(this.spec.burst, this.tokens + 1);
  }

  get full(): boolean {
    return this.tokens >= this.spec.burst;
  }
}

/** One admitted check; settle it exactly once. */
export interface BudgetTicket {
  readonly kind: BudgetKind;
  readonly peer: string;
  settled: boolean;
}

export interface BudgetStats {
  admitted: Record<BudgetKind, number>;
  refused: Record<BudgetKind, number>;
  failed: Record<BudgetKind, number>;
}

export class VerificationBudget {
  readonly options: BudgetOptions;
  private readonly global: Record<BudgetKind, TokenBucket>;
  private readonly peers: Record<BudgetKind, Map<string, TokenBucket>> = { verify: new Map(), decapsulate: new Map() };
  private readonly counters: BudgetStats = {
    admitted: { verify: 0, decapsulate: 0 },
    refused: { verify: 0, decapsulate: 0 },
    failed: { verify: 0, decapsulate: 0 },
  };

  constructor(options: BudgetOverrides | BudgetOptions = {}) {
    this.options = resolveBudget(options as BudgetOverrides);
    this.global = { verify: new TokenBucket(this.options.verify.global), decapsulate: new TokenBucket(this.options.decapsulate.global) };
  }

  /**
   * Reserves one check of `kind` for `peer` (a trusted peer's id) at time `now`; undefined (do
   * not run the check, refuse with `budget`) when the peer's or the global bucket is empty.
   */
  admit(kind: BudgetKind, peer: string, now: number): BudgetTicket | undefined {
    const bucket = this.peerBucket(kind, peer);
    const global = this.global[kind];
    if (bucket.available(now) < 1 || global.available(now) < 1) {
      this.counters.refused[kind]++;
      return undefined;
    }
    bucket.take(now);
    global.take(now);
    this.counters.admitted[kind]++;
    return { kind, peer, settled: false };
  }

  /** The check ran: a success gives its tokens back, a failure keeps them spent. */
  settle(ticket: BudgetTicket, success: boolean): void {
    if (ticket.settled) return;
    ticket.settled = true;
    if (!success) {
      this.counters.failed[ticket.kind]++;
      return;
    }
    this.global[ticket.kind].give();
    // The peer's bucket may have been dropped meanwhile (LRU); a fresh one starts full anyway.
    this.peers[ticket.kind].get(ticket.peer)?.give();
  }

  /** Tokens left now (for status and tests). */
  available(kind: BudgetKind, peer: string | undefined, now: number): number {
    return peer === undefined ? this.global[kind].available(now) : (this.peers[kind].get(peer)?.available(now) ?? this.options[kind].perPeer.burst);
  }

  get stats(): BudgetStats {
    return {
      admitted: { ...this.counters.admitted },
      refused: { ...this.counters.refused },
      failed: { ...this.counters.failed },
    };
  }

  private peerBucket(kind: BudgetKind, peer: string): TokenBucket {
    const map = this.peers[kind];
    let bucket = map.get(peer);
    if (bucket) {
      map.delete(peer);
      map.set(peer, bucket);
      return bucket;
    }
    bucket = new TokenBucket(this.options[kind].perPeer);
    map.set(peer, bucket);
    if (map.size > this.options.maxTrackedPeers) {
      // Drop the least recently used bucket, preferring one that is full (nothing forgotten).
      let victim: string | undefined;
      for (const [id, b] of map) {
        if (b.full) {
          victim = id;
          break;
        }
      }
      const oldest = map.keys().next();
      map.delete(victim ?? (oldest.done ? peer : oldest.value));
    }
    return bucket;
  }
}
