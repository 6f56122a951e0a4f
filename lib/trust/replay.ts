/**
 * Sliding replay window per sender (I4, docs/PROTOCOL.md §5): `last` is the highest accepted
 * sequence number; bit i of `seen` says whether last − i was accepted. A number is accepted iff
 * it is inside the window and not seen before; older ones are rejected deterministically.
 * Pure functions on an immutable value, so the receiver can check before expensive crypto and
 * commit only after the message authenticated.
 */

export interface ReplayWindow {
  /** Highest accepted sequence number, or -1n before the first. */
  readonly last: bigint;
  /** Bitmap of accepted numbers relative to `last` (bit 0 = last). */
  readonly seen: bigint;
}

export const EMPTY_WINDOW: ReplayWindow = Object.freeze({ last: -1n, seen: 0n });

export type ReplayVerdict = 'fresh' | 'duplicate' | 'replay';

export function replayCheck(window: ReplayWindow, seq: bigint, size: number): ReplayVerdict {
  if (seq > window.last) return 'fresh';
  const age = window.last - seq;
  if (age >= BigInt(size)) return 'replay';
  return (window.seen >> age) & 1n ? 'duplicate' : 'fresh';
}

/** Returns the window after accepting `seq`; call only when replayCheck said 'fresh'. */
export function replayCommit(window: ReplayWindow, seq: bigint, size: number): ReplayWindow {
  const width = BigInt(size);
  const mask = (1n << width) - 1n;
  if (seq > window.last) {
    const shift = seq - window.last;
    const seen = shift >= width ? 1n : ((window.seen << shift) | 1n) & mask;
    return Object.freeze({ last: seq, seen });
  }
  const age = window.last - seq;
  return Object.freeze({ last: window.last, seen: (window.seen | (1n << age)) & mask });
}
