/**
 * The operator's side of distributed revocation (I7), for the `pqc-revocation` node: checks a
 * request `{device_id, key_id?}`, builds the next cumulative update on the revocation state the
 * config node's session has applied, signs it with the CA key and publishes it retained at QoS 1
 * on the revocation topic. Nothing here imports node-red. docs/PROTOCOL.md §2.6 and §6.3.
 *
 * The sequence race. The revocation topic keeps one retained update, and each update must be
 * the strict successor (seq + 1, a superset) of the one receivers applied. The session learns the
 * current update from the retained copy the broker sends after the subscription is acknowledged,
 * so an update issued before that copy arrived would reuse a sequence number that is already
 * taken: every receiver would refuse it as `rollback`, and, worse, it would replace the retained
 * copy, so late joiners would miss the keys revoked in the update it forked from. Therefore:
 *
 * 1. requests wait until the state is known: the broker acknowledged the subscription and then
 *    either an update arrived (applied or refused) or `settleMs` passed without one (brokers send
 *    retained messages right after SUBACK; none arriving means there is none). This is done again
 *    after every reconnect (others may have published meanwhile), nothing is issued while offline,
 *    and a request that cannot learn the state within `syncWaitMs` fails instead of guessing;
 * 2. requests are handled one at a time, and each is built on the newer of the session's state
 *    and the last update this operator issued;
 * 3. after publishing, the operator waits until its own subscription sees the update back
 *    (`confirmMs`). If the session then holds this sequence number or a newer one without the
 *    requested key (another operator, or the CLI, published a different update for the same
 *    number at the same time), the request is issued again on that newer state, a few times at
 *    most. The cumulative successor also restores any entry the losing update left out.
 *
 * Two operators issuing for one CA still need to share the broker; `pqc-iiot ca revoke` keeps
 * its own state in the CA directory, so after using the node, capture the retained update into
 * revocations.bin before using the CLI again (and the other way round).
 */
import { bytesEqual } from '../crypto/symmetric';
import type { CaKeyPair } from '../session/identity';
import type { SecureSession } from '../session/session';
import { isRevoked, issueRevocation, EMPTY_REVOCATIONS, type RevocationState } from '../trust/revocation';
import type { CaPublicKey } from '../wire/ca-key';
import { toHex } from '../wire/common';
import { isValidDeviceId } from '../wire/fields';
import { ALL_KEYS } from '../wire/revocation';
import type { SecureEndpoint } from './endpoint';
import type { MqttConnection } from './mqtt-connection';

export const DEFAULT_SETTLE_MS = 1000;
export const DEFAULT_CONFIRM_MS = 10_000;
/** How long a request waits for the state to be known before it fails (not connected…). */
export const DEFAULT_SYNC_WAIT_MS = 30_000;
/** Issues per request when other operators keep taking the same sequence number. */
const MAX_ATTEMPTS = 3;

export interface RevocationRequest {
  readonly deviceId: string;
  /** 16 bytes; ALL_KEYS (sixteen zero bytes) = every key of the device. */
  readonly keyId: Uint8Array;
}

/** One revoked entry as the nodes put it into msg.payload (snake_case, like the input). */
export interface RevocationEntryInfo {
  device_id: string;
  /** 32 hex digits; all zeros = every key of the device. */
  key_id: string;
  all_keys: boolean;
}

export interface RevokeOutcome {
  /** Sequence number of the update that holds the request (the new one, or the current one). */
  seq: bigint;
  /** Entries this request added; empty when it was already revoked. */
  added: RevocationEntryInfo[];
  alreadyRevoked: boolean;
  /** False when the broker acknowledged the update but it was not seen back within confirmMs. */
  confirmed: boolean;
  /** Revoked entries in the update (all keys so far). */
  total: number;
}

function shown(value: unknown): string {
  if (typeof value !== 'string') return value === undefined ? 'missing' : `of type ${value === null ? 'null' : typeof value}`;
  return JSON.stringify(value.length > 48 ? `${value.slice(0, 48)}…` : value);
}

/**
 * msg.payload → request. `key_id` is 32 hex digits or the fingerprint as printed (groups of
 * four separated by colons); absent (or null) revokes every key of the device. Throws an Error
 * fit for done(err).
 */
export function parseRevocationRequest(payload: unknown): RevocationRequest {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload) || payload instanceof Uint8Array) {
    throw new Error('msg.payload must be an object {device_id, key_id?}');
  }
  const p = payload as Record<string, unknown>;
  const deviceId = p.device_id;
  if (typeof deviceId !== 'string' || !isValidDeviceId(deviceId)) {
    throw new Error(`msg.payload.device_id ${shown(deviceId)} is not a valid device id (1 to 128 characters of A-Z a-z 0-9 _ . -)`);
  }
  const raw = p.key_id;
  if (raw === undefined || raw === null) return { deviceId, keyId: ALL_KEYS };
  const hex = typeof raw === 'string' ? raw.trim().replace(/:/g, '') : '';
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) {
    throw new Error(`msg.payload.key_id ${shown(raw)} must be 32 hex digits or a fingerprint such as 1a2b:3c4d:… (leave it out to revoke every key)`);
  }
  const keyId = new Uint8Array(Buffer.from(hex, 'hex'));
  return { deviceId, keyId: keyId.every((b) => b === 0) ? ALL_KEYS : keyId };
}

export function entryInfo(deviceId: string, keyId: Uint8Array | string): RevocationEntryInfo {
  const hex = typeof keyId === 'string' ? keyId : toHex(keyId);
  return { device_id: deviceId, key_id: hex, all_keys: hex === toHex(ALL_KEYS) };
}

/** True when `ca` is the key pair of the pinned trust anchor. */
export function caMatches(ca: CaKeyPair, pinned: CaPublicKey): boolean {
  return ca.publicKey.sigAlgorithm === pinned.sigAlgorithm && bytesEqual(ca.publicKey.publicKey, pinned.publicKey);
}

/** Sequence numbers for msg.payload: a number while exact (always, in practice), else a string. */
export function seqValue(seq: bigint): number | string {
  return seq <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(seq) : seq.toString();
}

/** Short, language-neutral status text: "seq 3 · 2 revoked"; undefined before any update. */
export function revocationCounters(state: RevocationState): string | undefined {
  return state.seq < 0n ? undefined : `seq ${state.seq} · ${state.entries.length} revoked`;
}

export interface OperatorOptions {
  ca: CaKeyPair;
  session: Pick<SecureSession, 'revocationTopic' | 'revocationState'>;
  endpoint: Pick<SecureEndpoint, 'on' | 'off'>;
  connection: Pick<MqttConnection, 'isSubscribed' | 'on' | 'off' | 'publish'>;
  clock?: () => number;
  settleMs?: number;
  confirmMs?: number;
  syncWaitMs?: number;
}

export class RevocationOperator {
  private readonly opts: Required<Omit<OperatorOptions, 'clock'>> & { clock: () => number };
  private readonly topic: string;
  /** The applied state is the broker's current one (see the module comment). */
  private synced = false;
  private settle: NodeJS.Timeout | undefined;
  private syncWaiters: Array<(synced: boolean) => void> = [];
  private closed = false;
  private chain: Promise<unknown> = Promise.resolve();
  /** Newest update this operator issued (used when the session has not seen it back yet). */
  private lastIssued: RevocationState = EMPTY_REVOCATIONS;
  private readonly cleanups: Array<() => void> = [];
  /** Called when the state or the synchronisation changed (for the node status). */
  onChange: (() => void) | undefined;

  constructor(options: OperatorOptions) {
    this.opts = {
      settleMs: DEFAULT_SETTLE_MS, confirmMs: DEFAULT_CONFIRM_MS, syncWaitMs: DEFAULT_SYNC_WAIT_MS, ...options,
      clock: options.clock ?? Date.now,
    };
    this.topic = options.session.revocationTopic;
    const { connection, endpoint } = this.opts;
    const onSubscribed = (filter: string): void => {
      if (filter === this.topic) this.startSettle();
    };
    // Offline, other operators may publish: after a reconnect the state is read again.
    const onStatus = (state: string): void => {
      if (state !== 'connected') this.unsync();
    };
    // An update arriving (applied or refused) after SUBACK is the retained copy, or newer.
    const onUpdate = (): void => {
      if (connection.isSubscribed(this.topic)) this.markSynced();
      this.onChange?.();
    };
    connection.on('subscribed', onSubscribed);
    connection.on('status', onStatus);
    endpoint.on('revocation', onUpdate);
    endpoint.on('revocation-rejected', onUpdate);
    this.cleanups.push(() => {
      connection.off('subscribed', onSubscribed);
      connection.off('status', onStatus);
      endpoint.off('revocation', onUpdate);
      endpoint.off('revocation-rejected', onUpdate);
      clearTimeout(this.settle);
      for (const waiter of this.syncWaiters.splice(0)) waiter(false);
    });
    if (connection.isSubscribed(this.topic)) this.startSettle();
  }

  get revocationTopic(): string {
    return this.topic;
  }

  /** True while requests need not wait for the retained state. */
  get isSynced(): boolean {
    return this.synced;
  }

  /** The state the next update would be built on. */
  state(): RevocationState {
    const current = this.opts.session.revocationState();
    return this.lastIssued.seq > current.seq ? this.lastIssued : current;
  }

  /** Revokes one key (or every key) of a device; requests run one after another. */
  revoke(request: RevocationRequest): Promise<RevokeOutcome> {
    const run = this.chain.then(() => this.revokeNow(request));
    this.chain = run.catch(() => undefined);
    return run;
  }

  close(): void {
    this.closed = true;
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }

  private startSettle(): void {
    if (this.synced || this.settle || this.closed) return;
    this.settle = setTimeout(() => this.markSynced(), this.opts.settleMs);
    this.settle.unref();
  }

  private markSynced(): void {
    clearTimeout(this.settle);
    this.settle = undefined;
    if (this.synced || this.closed) return;
    this.synced = true;
    for (const waiter of this.syncWaiters.splice(0)) waiter(true);
    this.onChange?.();
  }

  private unsync(): void {
    clearTimeout(this.settle);
    this.settle = undefined;
    if (!this.synced) return;
    this.synced = false;
    this.onChange?.();
  }

  private waitSynced(): Promise<boolean> {
    if (this.synced) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => done(this.synced), this.opts.syncWaitMs);
      timer.unref();
      const done = (synced: boolean): void => {
        clearTimeout(timer);
        this.syncWaiters = this.syncWaiters.filter((w) => w !== done);
        resolve(synced);
      };
      this.syncWaiters.push(done);
    });
  }

  private async revokeNow(request: RevocationRequest): Promise<RevokeOutcome> {
    for (let attempt = 1; ; attempt++) {
      if (!(await this.waitSynced())) {
        if (this.closed) throw new Error('the node was closed before the update was issued');
        throw new Error(
          `the current revocation update is not known yet (not connected, or the broker has not acknowledged the subscription to "${this.topic}"); ` +
            'nothing was issued, try again',
        );
      }
      const base = this.state();
      if (isRevoked(base, request.deviceId, request.keyId)) {
        return { seq: base.seq, added: [], alreadyRevoked: true, confirmed: true, total: base.entries.length };
      }
      const issued = issueRevocation(this.opts.ca, base, [request], this.topic, this.opts.clock());
      await this.opts.connection.publish(this.topic, Buffer.from(issued.bytes), { qos: 1, retain: true });
      this.lastIssued = issued.state;
      this.onChange?.();
      const confirmed = await this.seen(issued.state.seq);
      const now = this.opts.session.revocationState();
      if (!confirmed || isRevoked(now, request.deviceId, request.keyId)) {
        return {
          seq: issued.state.seq,
          added: [entryInfo(request.deviceId, request.keyId)],
          alreadyRevoked: false,
          confirmed,
          total: issued.state.entries.length,
        };
      }
      // The session holds this number (or a newer one) without our entry: someone else's
      // update took it. Issue the request again on top of what receivers now hold.
      if (attempt >= MAX_ATTEMPTS) {
        throw new Error(
          `revocation sequence conflict: another operator keeps publishing updates on ${this.topic} (now seq ${now.seq}); ` +
            'the key is not revoked yet, try again',
        );
      }
    }
  }

  /** Resolves true once the session applied `seq` or newer, false after confirmMs or on close. */
  private seen(seq: bigint): Promise<boolean> {
    const reached = (): boolean => this.opts.session.revocationState().seq >= seq;
    if (reached()) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const check = (): void => {
        if (reached()) stop(true);
      };
      const stop = (result: boolean): void => {
        clearTimeout(timer);
        this.opts.endpoint.off('revocation', check);
        this.opts.endpoint.off('revocation-rejected', check);
        const i = this.cleanups.indexOf(onClose);
        if (i >= 0) this.cleanups.splice(i, 1);
        resolve(result);
      };
      const onClose = (): void => stop(false);
      const timer = setTimeout(() => stop(reached()), this.opts.confirmMs);
      timer.unref();
      this.opts.endpoint.on('revocation', check);
      this.opts.endpoint.on('revocation-rejected', check);
      this.cleanups.push(onClose);
    });
  }
}
