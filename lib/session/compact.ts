/**
 * Compact mode (docs/PROTOCOL.md §4.8): the sender's side collects the message digests of the
 * compact envelopes it seals, closes batches by the rules of §4.7 (BatchWindow) and signs one
 * manifest per batch; the receiver's side remembers which digests a verified manifest listed.
 * Pure apart from the scheduler: keys, time and the signer come in.
 */
import { sha256 } from '../crypto/symmetric';
import type { SigAlgorithm } from '../crypto/algorithms';
import { encodeBatchManifest, encodeBatchManifestBody, manifestDigest, MAX_MANIFEST_DIGESTS } from '../wire/batch-manifest';
import {
  BatchWindow, EVENT_LOOP_SCHEDULER, MAX_BATCH_DELAY_MS, checkedBatchOptions, coverBatch, type BatchCoverage, type BatchOptions, type BatchScheduler,
} from './batch';

/** Digests of verified manifests a receiver remembers, over all senders (least recently used dropped first). */
export const DEFAULT_VERIFIED_DIGESTS = 8192;

/**
 * When a manifest closes by default (§4.8): at 255 envelopes or one second after its first one.
 * Thin links pay per byte, so a manifest waits for its window instead of closing after a quiet
 * turn of the event loop; receivers wait `compactWaitMs` (2 s) for it, more than this window.
 */
export const DEFAULT_COMPACT_BATCH_OPTIONS: BatchOptions = Object.freeze({ maxLeaves: MAX_MANIFEST_DIGESTS, maxDelayMs: MAX_BATCH_DELAY_MS });

/** Merges overrides into the compact defaults; unlike batch signing, a manifest of one digest is fine. */
export function resolveCompactBatchOptions(options: Partial<BatchOptions> | undefined): BatchOptions {
  return checkedBatchOptions(DEFAULT_COMPACT_BATCH_OPTIONS, options, 'compact batch', MAX_MANIFEST_DIGESTS);
}

/** A signed manifest ready to publish (not retained) after the envelopes it lists. */
export interface ManifestMessage {
  readonly topic: string;
  readonly payload: Uint8Array;
  /** Envelopes it authenticates. */
  readonly count: number;
}

/** Where the session hands manifests: the I/O layer publishes them, or reports a signing failure. */
export interface ManifestSink {
  manifest(message: ManifestMessage): void;
  /** The provider could not sign: the envelopes of this batch will be `unsigned` at receivers. */
  failed(error: unknown, count: number): void;
}

export interface ManifestSigner {
  readonly senderId: string;
  readonly keyEpoch: number;
  readonly keyId: Uint8Array;
  readonly sigAlgorithm: SigAlgorithm;
  sign(digest: Uint8Array): Promise<Uint8Array>;
}

export interface ManifestStats extends BatchCoverage {
  /** Manifests signed (one per batch; `envelopes` counts the digests they listed). */
  manifests: number;
}

/** Sender side: one manifest per closed batch of compact envelopes. */
export class ManifestBatcher {
  private readonly window: BatchWindow<Uint8Array>;
  private readonly counters: ManifestStats = { manifests: 0, envelopes: 0, largest: 0 };
  /** The hand-over of the previous manifest: manifests go out in batch order (see signManifest). */
  private handedOver: Promise<void> = Promise.resolve();

  constructor(
    private readonly signer: ManifestSigner,
    private readonly topic: string,
    private readonly sink: () => ManifestSink | undefined,
    private readonly clock: () => number,
    readonly options: BatchOptions,
    scheduler: BatchScheduler = EVENT_LOOP_SCHEDULER,
  ) {
    // Closed by size or by its delay only (no quiet-turn rule), and never by time while the
    // previous manifest is still being signed: it collects until then (BatchWindow).
    this.window = new BatchWindow(options, (batch) => this.signManifest(batch), scheduler, { quietTurn: false });
  }

  /** Adds the message digest of a compact envelope just sealed. */
  add(messageDigest: Uint8Array): void {
    this.window.add(messageDigest);
  }

  flush(): void {
    this.window.flush();
  }

  get stats(): Readonly<ManifestStats> {
    return { ...this.counters };
  }

  /**
   * Signs at once (signatures of several batches may run in parallel on worker threads), but
   * hands manifests over in batch order: receivers apply manifests in arrival order, and a later
   * batch released first would push the older envelopes out of their replay window (§5).
   * Returns the signing alone (BatchWindow waits for it before closing the next batch by time).
   */
  private signManifest(digests: Uint8Array[]): Promise<Uint8Array> {
    const sink = this.sink();
    const signing = (async () => {
      const body = encodeBatchManifestBody({
        senderId: this.signer.senderId,
        senderKeyEpoch: this.signer.keyEpoch,
        senderKeyId: this.signer.keyId,
        sigAlgorithm: this.signer.sigAlgorithm,
        timestamp: BigInt(Math.floor(this.clock())),
        digests,
      });
      return encodeBatchManifest(body, await this.signer.sign(manifestDigest(body)));
    })();
    signing.catch(() => undefined); // reported below, in order
    this.handedOver = this.handedOver.then(async () => {
      let payload: Uint8Array;
      try {
        payload = await signing;
      } catch (error) {
        sink?.failed(error, digests.length);
        return;
      }
      this.counters.manifests++;
      coverBatch(this.counters, digests.length);
      sink?.manifest({ topic: this.topic, payload, count: digests.length });
    });
    return signing;
  }
}

/**
 * Receiver side: message digests listed by a manifest whose signature verified, keyed by the
 * signing key (SHA-256 of key id ‖ digest), so a digest counts only for the key that signed it.
 * One LRU over all senders, `capacity` entries; the value is the manifest's timestamp.
 */
export class VerifiedDigests {
  private readonly entries = new Map<string, number>();

  constructor(readonly capacity: number = DEFAULT_VERIFIED_DIGESTS) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1_000_000) throw new Error('verified digests capacity must be 1..1000000');
  }

  private static key(keyId: Uint8Array, digest: Uint8Array): string {
    return Buffer.from(sha256(keyId, digest)).toString('base64');
  }

  add(keyId: Uint8Array, digest: Uint8Array, timestamp: number): void {
    const k = VerifiedDigests.key(keyId, digest);
    this.entries.delete(k);
    this.entries.set(k, timestamp);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }

  /** The timestamp of the manifest that listed it, or undefined when no verified manifest did. */
  find(keyId: Uint8Array, digest: Uint8Array): number | undefined {
    return this.entries.get(VerifiedDigests.key(keyId, digest));
  }

  get size(): number {
    return this.entries.size;
  }
}
