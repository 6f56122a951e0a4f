/**
 * The throughput and flood-protection settings of a `pqc-config` node, as the editor stores them
 * (strings, booleans, or numbers in hand-written flows), turned into the SecureSession options
 * `batch` and `verifiedRoots` (docs/PROTOCOL.md §4.7), `budget` (§6.7), `compactBatch` and the
 * compact-mode `limits` (§4.8, §7), plus the worker-thread choice (lib/io/crypto-workers.ts).
 *
 * An absent or empty property takes the core default, so a flow saved before these settings
 * existed runs exactly as before. Anything else is parsed strictly: "16 ", "0x10", "1e3", "-1",
 * "12abc" or "yes" is an error naming the setting as the editor labels it, never a coerced value.
 * The ranges are the core's (lib/session/batch.ts, lib/session/compact.ts, lib/limits.ts,
 * lib/trust/budget.ts), which validates again.
 */
import { DEFAULT_LIMITS, LIMIT_BOUNDS, type Limits } from '../limits';
import { DEFAULT_BATCH_OPTIONS, DEFAULT_VERIFIED_ROOTS, MAX_BATCH_DELAY_MS, type BatchOptions } from '../session/batch';
import { DEFAULT_COMPACT_BATCH_OPTIONS } from '../session/compact';
import { DEFAULT_BUDGET, type BucketSpec, type BudgetOptions } from '../trust/budget';
import { MAX_BATCH_LEAVES } from '../wire/auth';
import { MAX_MANIFEST_DIGESTS } from '../wire/batch-manifest';
import type { CryptoWorkersChoice } from './crypto-workers';

/** Properties of the config node as saved in flows.json (all public). */
export interface ThroughputSettings {
  /** Merkle-batched signatures on/off (default on). */
  batching?: unknown;
  batchMaxLeaves?: unknown;
  batchMaxDelayMs?: unknown;
  verifiedRoots?: unknown;
  /** Verification budgets on/off (default on). */
  budget?: unknown;
  budgetVerifyPerPeerBurst?: unknown;
  budgetVerifyPerPeerRate?: unknown;
  budgetVerifyGlobalBurst?: unknown;
  budgetVerifyGlobalRate?: unknown;
  budgetDecapsulatePerPeerBurst?: unknown;
  budgetDecapsulatePerPeerRate?: unknown;
  budgetDecapsulateGlobalBurst?: unknown;
  budgetDecapsulateGlobalRate?: unknown;
  /** 'auto' (default) or 'off'; process-wide, see lib/io/crypto-workers.ts. */
  cryptoWorkers?: unknown;
  /** Compact mode, sender side: when a batch manifest closes (SessionOptions.compactBatch). */
  compactBatchMaxDigests?: unknown;
  compactBatchMaxDelayMs?: unknown;
  /** Compact mode, receiver side: the session limits of the same names (lib/limits.ts). */
  compactWaitMs?: unknown;
  maxCompactPending?: unknown;
  maxManifestBytes?: unknown;
}

/** The limits set on the Throughput tab; the others are set elsewhere or take their defaults. */
export type CompactLimits = Pick<Limits, 'compactWaitMs' | 'maxCompactPending' | 'maxManifestBytes'>;

export interface ThroughputOptions {
  /** For SessionOptions.batch: false = every envelope signed on its own. */
  batch: BatchOptions | false;
  verifiedRoots: number;
  /** For SessionOptions.budget: false = no budgets. */
  budget: BudgetOptions | false;
  cryptoWorkers: CryptoWorkersChoice;
  /** For SessionOptions.compactBatch: when a compact-mode manifest closes (maxLeaves = digests listed). */
  compactBatch: BatchOptions;
  /** For SessionOptions.limits, merged with the limits set elsewhere on the node. */
  limits: CompactLimits;
}

type NumericKey = Exclude<keyof ThroughputSettings, 'batching' | 'budget' | 'cryptoWorkers'>;

interface NumericSetting {
  /** The editor's label, so an error points at the field to fix. */
  readonly label: string;
  /** Whole numbers only, or decimals allowed (token rates may be fractional). */
  readonly integer: boolean;
  readonly min: number;
  readonly max: number;
  readonly fallback: number;
}

/** Same upper bounds as lib/trust/budget.ts: its `spec()` refuses anything beyond them. */
const BUDGET_MAX = 1e9;

function burst(label: string, fallback: number): NumericSetting {
  return { label, integer: true, min: 1, max: BUDGET_MAX, fallback };
}

function rate(label: string, fallback: number): NumericSetting {
  return { label, integer: false, min: 0, max: BUDGET_MAX, fallback };
}

/** A session limit: its range and default are lib/limits.ts's. */
function limit(label: string, key: keyof CompactLimits): NumericSetting {
  const [min, max] = LIMIT_BOUNDS[key];
  return { label, integer: true, min, max, fallback: DEFAULT_LIMITS[key] };
}

const d = DEFAULT_BUDGET;

/** Every numeric setting with its range and default (the core's). */
export const THROUGHPUT_NUMBERS: Readonly<Record<NumericKey, NumericSetting>> = Object.freeze({
  // 1 is allowed and means "no batching" in the core (a batch of one is an ordinary signature).
  batchMaxLeaves: { label: 'batch size (messages per signature)', integer: true, min: 1, max: MAX_BATCH_LEAVES, fallback: DEFAULT_BATCH_OPTIONS.maxLeaves },
  batchMaxDelayMs: { label: 'max batch delay (ms)', integer: true, min: 0, max: MAX_BATCH_DELAY_MS, fallback: DEFAULT_BATCH_OPTIONS.maxDelayMs },
  // 0 is allowed: every batch envelope's root signature is then checked again.
  verifiedRoots: { label: 'verified roots cache', integer: true, min: 0, max: 1_000_000, fallback: DEFAULT_VERIFIED_ROOTS },
  budgetVerifyPerPeerBurst: burst('signature checks per sender: burst', d.verify.perPeer.burst),
  budgetVerifyPerPeerRate: rate('signature checks per sender: rate', d.verify.perPeer.rate),
  budgetVerifyGlobalBurst: burst('signature checks, all senders: burst', d.verify.global.burst),
  budgetVerifyGlobalRate: rate('signature checks, all senders: rate', d.verify.global.rate),
  budgetDecapsulatePerPeerBurst: burst('decapsulations per sender: burst', d.decapsulate.perPeer.burst),
  budgetDecapsulatePerPeerRate: rate('decapsulations per sender: rate', d.decapsulate.perPeer.rate),
  budgetDecapsulateGlobalBurst: burst('decapsulations, all senders: burst', d.decapsulate.global.burst),
  budgetDecapsulateGlobalRate: rate('decapsulations, all senders: rate', d.decapsulate.global.rate),
  // Compact mode (§4.8), sender side; 1 is allowed: a manifest then lists each message alone.
  compactBatchMaxDigests: {
    label: 'manifest size (messages per manifest)', integer: true, min: 1, max: MAX_MANIFEST_DIGESTS, fallback: DEFAULT_COMPACT_BATCH_OPTIONS.maxLeaves,
  },
  compactBatchMaxDelayMs: {
    label: 'max manifest delay (ms)', integer: true, min: 0, max: MAX_BATCH_DELAY_MS, fallback: DEFAULT_COMPACT_BATCH_OPTIONS.maxDelayMs,
  },
  // Receiver side: session limits, with lib/limits.ts's ranges and defaults.
  compactWaitMs: limit('manifest wait (ms)', 'compactWaitMs'),
  maxCompactPending: limit('held messages (waiting for their manifest)', 'maxCompactPending'),
  maxManifestBytes: limit('max manifest (bytes)', 'maxManifestBytes'),
});

const INTEGER_TEXT = /^[0-9]+$/;
const DECIMAL_TEXT = /^[0-9]+(\.[0-9]+)?$/;

/** A setting's value as quoted in an error (public settings only; cut so a log line stays short). */
function shown(value: unknown): string {
  const s = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}

function numberSetting(settings: ThroughputSettings, key: NumericKey): number {
  const spec = THROUGHPUT_NUMBERS[key];
  const value = settings[key];
  const range = `${spec.integer ? 'an integer' : 'a number'} from ${spec.min} to ${spec.max}`;
  const problem = (): Error => new Error(`${spec.label} (${key}) must be ${range}, not ${shown(value)}`);
  if (value === undefined || value === null || value === '') return spec.fallback;
  let n: number;
  if (typeof value === 'number') {
    n = value;
  } else if (typeof value === 'string' && (spec.integer ? INTEGER_TEXT : DECIMAL_TEXT).test(value)) {
    n = Number(value);
  } else {
    throw problem();
  }
  if (!Number.isFinite(n) || (spec.integer && !Number.isInteger(n)) || n < spec.min || n > spec.max) throw problem();
  return n;
}

function switchSetting(settings: ThroughputSettings, key: 'batching' | 'budget', label: string): boolean {
  const value = settings[key];
  if (value === undefined || value === null || value === '') return true;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new Error(`${label} (${key}) must be true or false, not ${shown(value)}`);
}

function cryptoWorkersSetting(settings: ThroughputSettings): CryptoWorkersChoice {
  const value = settings.cryptoWorkers;
  if (value === undefined || value === null || value === '' || value === 'auto') return 'auto';
  if (value === 'off') return 'off';
  throw new Error(`worker threads (cryptoWorkers) must be "auto" or "off", not ${shown(value)}`);
}

function bucket(settings: ThroughputSettings, burstKey: NumericKey, rateKey: NumericKey): BucketSpec {
  return Object.freeze({ rate: numberSetting(settings, rateKey), burst: numberSetting(settings, burstKey) });
}

/**
 * The session options of these settings; throws an Error naming the first bad setting. Every
 * value is checked, also those of a feature that is switched off: a bad value in flows.json is
 * reported rather than kept for the day the feature is switched back on.
 */
export function throughputOptionsFrom(settings: ThroughputSettings): ThroughputOptions {
  const batching = switchSetting(settings, 'batching', 'batch signatures');
  const batch: BatchOptions = Object.freeze({
    maxLeaves: numberSetting(settings, 'batchMaxLeaves'),
    maxDelayMs: numberSetting(settings, 'batchMaxDelayMs'),
  });
  const verifiedRoots = numberSetting(settings, 'verifiedRoots');
  const budgeting = switchSetting(settings, 'budget', 'verification budget');
  const budget: BudgetOptions = Object.freeze({
    verify: Object.freeze({
      perPeer: bucket(settings, 'budgetVerifyPerPeerBurst', 'budgetVerifyPerPeerRate'),
      global: bucket(settings, 'budgetVerifyGlobalBurst', 'budgetVerifyGlobalRate'),
    }),
    decapsulate: Object.freeze({
      perPeer: bucket(settings, 'budgetDecapsulatePerPeerBurst', 'budgetDecapsulatePerPeerRate'),
      global: bucket(settings, 'budgetDecapsulateGlobalBurst', 'budgetDecapsulateGlobalRate'),
    }),
    // Not an editor setting: how many senders' buckets are remembered is a memory bound, not a tuning knob.
    maxTrackedPeers: DEFAULT_BUDGET.maxTrackedPeers,
  });
  const cryptoWorkers = cryptoWorkersSetting(settings);
  const compactBatch: BatchOptions = Object.freeze({
    maxLeaves: numberSetting(settings, 'compactBatchMaxDigests'),
    maxDelayMs: numberSetting(settings, 'compactBatchMaxDelayMs'),
  });
  const limits: CompactLimits = Object.freeze({
    compactWaitMs: numberSetting(settings, 'compactWaitMs'),
    maxCompactPending: numberSetting(settings, 'maxCompactPending'),
    maxManifestBytes: numberSetting(settings, 'maxManifestBytes'),
  });
  return {
    batch: batching ? batch : false,
    verifiedRoots,
    budget: budgeting ? budget : false,
    cryptoWorkers,
    compactBatch,
    limits,
  };
}
