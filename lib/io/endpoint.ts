/**
 * Wires one SecureSession (sans-I/O core) to one MQTT connection: publishes the signed key
 * announcement (retained) on every connect, feeds announcements from `pqc/keys/+` and CA-signed
 * revocation updates (retained, I7) to the session, publishes and checks compact-mode batch manifests (§4.8), seals outgoing data per recipient, and opens incoming envelopes once per MQTT message
 * for every node whose filter matches. Node files only map what it returns to Node-RED.
 */
import { EventEmitter } from 'node:events';
import { REASONS, type Reason } from '../result';
import { topicMatches, isValidTopicFilter } from '../trust/topics';
import { isValidDeviceId } from '../wire/fields';
import { decodeDirectEnvelope } from '../wire/envelope';
import { peekType } from '../wire/header';
import { decodeTopicEnvelope } from '../wire/topic-envelope';
import { decodeCompactEnvelope } from '../wire/compact-envelope';
import type { AnnouncementVerdict, RevocationVerdict, SecureSession } from '../session/session';
import type { KeyStrategy } from '../session/topic-keys';
import { errorText, publishPacketSize, type IncomingMessage, type MessageHandler, type MqttConnection, type PublishOptions, type QoS } from './mqtt-connection';
import { ProviderError } from '../session/provider';

/** The parts of MqttConnection the endpoint uses (a fake in unit tests is a few lines). */
export type EndpointConnection = Pick<
  MqttConnection,
  'subscribe' | 'unsubscribe' | 'publish' | 'setBirthMessage' | 'maximumPacketSize' | 'protocolVersion'
>;

/** The parts of SecureSession the endpoint uses. */
export type EndpointSession = Pick<
  SecureSession,
  | 'deviceId' | 'limits' | 'announcementTopic' | 'announcementFilter' | 'isAnnouncementTopic' | 'buildAnnouncement' | 'handleAnnouncement'
  | 'sealDirect' | 'open' | 'revocationTopic' | 'handleRevocation'
  | 'sealTopic' | 'handleKeyMessage' | 'topicKeyFilter' | 'isTopicKeyTopic' | 'expirePending'
  | 'setManifestSink' | 'flushManifests' | 'handleManifest' | 'batchManifestFilter' | 'isBatchManifestTopic'
>;

export interface PqcInfo {
  sender: string;
  keyId: string;
  keyEpoch: number;
  /** Decimal string: sequence numbers exceed 2^53, and a BigInt would break JSON.stringify(msg). */
  seq: string;
  timestamp: number;
  suite: string;
}

export interface VerifiedMessage {
  topic: string;
  data: Buffer;
  qos: QoS;
  retain: boolean;
  pqc: PqcInfo;
}

export interface Rejection {
  reason: Reason;
  topic: string;
  /** The sender id the envelope claims; unverified (that is often why it was rejected). */
  sender?: string;
}

export type Verdict = { ok: true; message: VerifiedMessage } | { ok: false; rejection: Rejection; quiet: boolean };

/**
 * Rejections that are expected in normal operation and say nothing about an attack: copies from
 * overlapping subscriptions, our own messages echoed back, envelopes addressed to someone else on
 * a shared topic. They are counted but not reported on the rejection output.
 */
export const QUIET_REASONS: ReadonlySet<Reason> = new Set<Reason>(['duplicate', 'own-message', 'not-for-me']);

export type VerdictListener = (verdict: Verdict) => void;

export interface SendOptions extends PublishOptions {
  /** Named recipients select direct mode; none selects topic mode (§4.5 of docs/PROTOCOL.md). */
  recipients: readonly string[];
  /** Topic mode: when the topic key is replaced (default: hourly and on membership change). */
  strategy?: KeyStrategy;
  /**
   * Topic mode: compact envelopes authenticated by one signed manifest per batch (docs/PROTOCOL.md
   * §4.8), for thin links. Default false: every envelope verifiable on its own (§4.7).
   */
  compact?: boolean;
}

export interface EndpointEvents {
  /** A peer's key became trusted or changed. */
  peer: [verdict: AnnouncementVerdict];
  /** An announcement on the keys topic was refused (public data only: topic and reason). */
  'announcement-rejected': [rejection: { topic: string; reason: Reason }];
  /** A newer revocation update was applied (revoked peers are no longer trusted). */
  revocation: [verdict: RevocationVerdict];
  /** A message on the revocation topic was refused (forged, older, for another CA…). */
  'revocation-rejected': [rejection: { topic: string; reason: Reason }];
  warning: [message: string];
  /** Topic mode: a new topic key was published for `topic`. */
  'key-rotated': [info: { topic: string; serial: bigint; recipients: string[] }];
  'key-message-rejected': [rejection: { topic: string; reason: Reason }];
  /** Compact mode: a batch manifest was refused (forged, stale key, over budget…). */
  'manifest-rejected': [rejection: { topic: string; reason: Reason }];
}

/** QoS 1 so a broker restart does not lose it; retained so late joiners learn the key at once. */
const ANNOUNCEMENT_OPTIONS: PublishOptions = Object.freeze({ qos: 1, retain: true });
/** Topic key messages likewise: late joiners get the current key from the retained copy. */
const KEY_MESSAGE_OPTIONS: PublishOptions = Object.freeze({ qos: 1, retain: true });
/**
 * Batch manifests: QoS 1 (a lost manifest loses its whole batch) and never retained (a late
 * joiner has no use for the manifest of envelopes it did not get).
 */
const MANIFEST_OPTIONS: PublishOptions = Object.freeze({ qos: 1, retain: false });
/** How often held topic-mode messages are checked for an expired wait. */
const PENDING_SWEEP_MS = 1000;

export class SecureEndpoint extends EventEmitter<EndpointEvents> {
  readonly ownerId: string;
  private readonly session: EndpointSession;
  private readonly connection: EndpointConnection;
  private readonly clock: () => number;
  /** owner id → filter → listener */
  private readonly verdictListeners = new Map<string, Map<string, VerdictListener>>();
  private readonly onAnnouncementMessage: MessageHandler = (m) => this.handleAnnouncementMessage(m);
  private readonly onRevocationMessage: MessageHandler = (m) => this.handleRevocationMessage(m);
  /** One handler object for every data filter, so the connection calls it once per message. */
  private readonly onDataMessage: MessageHandler = (m) => this.handleDataMessage(m);
  private readonly onKeyMessage: MessageHandler = (m) => this.handleKeyMessage(m);
  private readonly onManifestMessage: MessageHandler = (m) => this.handleManifestMessage(m);
  private readonly durable: () => Promise<void>;
  private pendingSweep: NodeJS.Timeout | undefined;
  /** Publish calls of successive sends, in send order (see `inSendOrder`). */
  private sendOrder: Promise<void> = Promise.resolve();
  private started = false;

  /**
   * `durable` resolves once the session's counters are stored (docs/PROTOCOL.md §5.1): awaited
   * before an accepted message is released and before a sealed envelope is published.
   */
  constructor(opts: {
    session: EndpointSession; connection: EndpointConnection; ownerId: string; clock?: () => number; durable?: () => Promise<void>;
  }) {
    super();
    this.session = opts.session;
    this.connection = opts.connection;
    this.ownerId = opts.ownerId;
    this.clock = opts.clock ?? Date.now;
    this.durable = opts.durable ?? (() => Promise.resolve());
  }

  get deviceId(): string {
    return this.session.deviceId;
  }

  /** Announces on every connect and listens for other devices' announcements. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.connection.setBirthMessage(async () => ({
      topic: this.session.announcementTopic(),
      payload: Buffer.from(await this.session.buildAnnouncement(this.clock())),
      options: ANNOUNCEMENT_OPTIONS,
    }));
    this.connection.subscribe(this.session.announcementFilter(), 1, this.onAnnouncementMessage, this.ownerId);
    this.connection.subscribe(this.session.revocationTopic, 1, this.onRevocationMessage, this.ownerId);
    this.session.setManifestSink({
      // After every envelope sent before the batch closed: those are queued ahead of it (§4.8).
      manifest: (m) => {
        void this.inSendOrder(async () => {
          this.checkSize(m.topic, m.payload.length, MANIFEST_OPTIONS.qos, 'manifest');
          // In an array, so the send order moves on once it is handed to MQTT, not once delivered.
          return [this.connection.publish(m.topic, Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength), MANIFEST_OPTIONS)];
        }).then(
          ([delivered]) => delivered.catch((error: unknown) => this.emit('warning', `batch manifest not delivered: ${errorText(error)}`)),
          (error: unknown) => this.emit('warning', `batch manifest not published: ${errorText(error)}`),
        );
      },
      failed: (error, count) => this.emit('warning', `batch manifest for ${count} compact envelopes not signed: ${errorText(error)}`),
    });
    this.pendingSweep = setInterval(() => this.session.expirePending(this.clock()), PENDING_SWEEP_MS);
    this.pendingSweep.unref();
  }

  stop(): void {
    if (!this.started) return;
    this.started = false;
    clearInterval(this.pendingSweep);
    // The manifest of compact envelopes already handed to MQTT goes out before we let go.
    this.session.flushManifests();
    // Held messages resolve now (as no-key) instead of waiting for a key that will not come.
    this.session.expirePending(Number.MAX_SAFE_INTEGER);
    this.connection.setBirthMessage(undefined);
    this.connection.unsubscribe(this.session.announcementFilter(), this.ownerId);
    this.connection.unsubscribe(this.session.revocationTopic, this.ownerId);
    for (const owner of [...this.verdictListeners.keys()]) this.removeOwner(owner);
  }

  /** Delivers a verdict for every data message on `filter` to `listener`, until removeOwner. */
  subscribe(filter: string, qos: QoS, listener: VerdictListener, ownerId: string): void {
    if (!isValidTopicFilter(filter)) throw new Error(`invalid topic filter "${filter}"`);
    let filters = this.verdictListeners.get(ownerId);
    const firstFilter = !filters;
    if (!filters) {
      filters = new Map();
      this.verdictListeners.set(ownerId, filters);
    }
    filters.set(filter, listener);
    this.connection.subscribe(filter, qos, this.onDataMessage, ownerId);
    // Topic mode: the keys of every publisher on the matching topics.
    this.connection.subscribe(this.session.topicKeyFilter(filter), 1, this.onKeyMessage, ownerId);
    // Compact mode: every sender's batch manifests (one filter per node, whatever its data filters).
    if (firstFilter) this.connection.subscribe(this.session.batchManifestFilter(), 1, this.onManifestMessage, ownerId);
  }

  /** Drops every subscription of one node (its close handler calls this). */
  removeOwner(ownerId: string): void {
    const filters = this.verdictListeners.get(ownerId);
    if (!filters) return;
    this.verdictListeners.delete(ownerId);
    for (const filter of filters.keys()) {
      this.connection.unsubscribe(filter, ownerId);
      this.connection.unsubscribe(this.session.topicKeyFilter(filter), ownerId);
    }
    this.connection.unsubscribe(this.session.batchManifestFilter(), ownerId);
  }

  /**
   * Direct mode (recipients named): seals `data` once per recipient. Topic mode (none named):
   * seals it once under the topic key, publishing a new key message (retained) first when the
   * key was replaced. Everything is sealed and size-checked before the first publish, so a local
   * error sends nothing. Resolves with the number of envelopes published; rejects with a message
   * fit for the flow (no secrets).
   */
  async send(topic: string, data: Uint8Array, options: SendOptions): Promise<number> {
    const recipients = [...new Set(options.recipients)];
    for (const r of recipients) {
      if (!isValidDeviceId(r)) throw new Error(`invalid recipient device id ${JSON.stringify(r)}`);
    }
    const now = this.clock();
    const publishOptions: PublishOptions = { qos: options.qos, retain: options.retain };
    const toBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    if (recipients.length === 0) {
      // Publish calls follow send order, so a new key message is always handed to MQTT before the
      // first envelope under it; delivery is awaited outside. sealTopic is called at once (the
      // session keeps call order per topic), so envelopes sent close together can share one
      // batch signature (docs/PROTOCOL.md §4.7).
      const sealing = this.session.sealTopic(topic, data, now, options.strategy, { compact: options.compact === true });
      sealing.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
      const publishing = await this.inSendOrder(async () => {
        const sealed = await sealing;
        this.checkSize(topic, sealed.envelope.length, options.qos);
        if (sealed.keyMessage) this.checkSize(sealed.keyMessage.topic, sealed.keyMessage.payload.length, 1, 'key message');
        await this.durable();
        const calls: Array<Promise<void>> = [];
        if (sealed.keyMessage) {
          calls.push(this.connection.publish(sealed.keyMessage.topic, toBuffer(sealed.keyMessage.payload), KEY_MESSAGE_OPTIONS));
          this.emit('key-rotated', { topic, serial: sealed.keyMessage.serial, recipients: sealed.keyMessage.recipients });
        }
        calls.push(this.connection.publish(topic, toBuffer(sealed.envelope), publishOptions));
        return calls;
      });
      await Promise.all(publishing);
      return 1;
    }
    // Sealed together, so the envelopes for several recipients share one batch signature (§4.7).
    const sealing = Promise.all(recipients.map(async (recipient) => {
      const envelope = await this.session.sealDirect(topic, data, recipient, now);
      this.checkSize(topic, envelope.length, options.qos);
      return envelope;
    }));
    sealing.catch(() => undefined); // awaited below
    const publishing = await this.inSendOrder(async () => {
      const envelopes = await sealing;
      await this.durable();
      return envelopes.map((e) => this.connection.publish(topic, toBuffer(e), publishOptions));
    });
    await Promise.all(publishing);
    return publishing.length;
  }

  /**
   * Runs `fn` (await the seal, then hand the envelopes to MQTT) after that of every earlier send.
   * Seals may finish out of order (signatures run on worker threads, in batches), but sequence
   * numbers are taken in send order, so publishing in send order keeps each receiver's replay
   * window (§5) from seeing a newer number long before an older one.
   */
  private inSendOrder<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.sendOrder.then(fn);
    this.sendOrder = run.then(() => undefined, () => undefined);
    return run;
  }

  private checkSize(topic: string, envelopeBytes: number, qos: QoS, what = 'envelope'): void {
    const limits = this.session.limits;
    const limit = what === 'envelope' ? limits.maxEnvelopeBytes : what === 'manifest' ? limits.maxManifestBytes : limits.maxKeyMessageBytes;
    if (envelopeBytes > limit) {
      throw new Error(`${what} of ${envelopeBytes} bytes exceeds the configured maximum of ${limit} bytes`);
    }
    const brokerLimit = this.connection.maximumPacketSize;
    if (brokerLimit === undefined) return;
    const packet = publishPacketSize(topic, envelopeBytes, qos, this.connection.protocolVersion);
    if (packet > brokerLimit) {
      throw new Error(`${what} needs an MQTT packet of ${packet} bytes; the broker accepts at most ${brokerLimit} bytes`);
    }
  }

  private async handleAnnouncementMessage(message: IncomingMessage): Promise<void> {
    // An empty retained message is how an operator clears an announcement: nothing to judge.
    if (message.payload.length === 0) return;
    const result = await this.session.handleAnnouncement(message.topic, message.payload, this.clock());
    if (result.ok) {
      if (result.value.changed) this.emit('peer', result.value);
    } else if (result.reason !== 'own-message') {
      this.emit('announcement-rejected', { topic: message.topic, reason: result.reason });
    }
  }

  private handleRevocationMessage(message: IncomingMessage): void {
    if (message.topic !== this.session.revocationTopic || message.payload.length === 0) return;
    const result = this.session.handleRevocation(message.topic, message.payload);
    if (result.ok) this.emit('revocation', result.value);
    // The retained update comes back on every reconnect: an exact duplicate is no news.
    else if (result.reason !== 'duplicate') this.emit('revocation-rejected', { topic: message.topic, reason: result.reason });
  }

  /** Topic key messages are never flow output; a rejected one is reported like an announcement. */
  private async handleKeyMessage(message: IncomingMessage): Promise<void> {
    if (message.payload.length === 0) return;
    let result: Awaited<ReturnType<EndpointSession['handleKeyMessage']>>;
    try {
      result = await this.session.handleKeyMessage(message.topic, message.payload, this.clock());
    } catch (error) {
      this.emit('warning', `key provider failed: ${errorText(error)}`);
      return;
    }
    if (!result.ok && !QUIET_REASONS.has(result.reason)) {
      this.emit('key-message-rejected', { topic: message.topic, reason: result.reason });
    }
  }

  /** Batch manifests are never flow output; a rejected one is reported like a key message. */
  private async handleManifestMessage(message: IncomingMessage): Promise<void> {
    if (message.payload.length === 0) return;
    const result = await this.session.handleManifest(message.topic, message.payload, this.clock());
    if (!result.ok && !QUIET_REASONS.has(result.reason)) {
      this.emit('manifest-rejected', { topic: message.topic, reason: result.reason });
    }
  }

  private async handleDataMessage(message: IncomingMessage): Promise<void> {
    // Key, manifest and revocation messages reach nodes subscribed to wide filters such as '#'; they are not data.
    if (
      this.session.isAnnouncementTopic(message.topic) || message.topic === this.session.revocationTopic ||
      this.session.isTopicKeyTopic(message.topic) || this.session.isBatchManifestTopic(message.topic)
    ) {
      return;
    }
    const targets = this.listenersFor(message.topic);
    if (targets.length === 0) return;
    const verdict = await this.verdictFor(message);
    for (const listener of targets) {
      try {
        listener(verdict);
      } catch (error) {
        this.emit('warning', `listener failed: ${errorText(error)}`);
      }
    }
  }

  private async verdictFor(message: IncomingMessage): Promise<Verdict> {
    let result: Awaited<ReturnType<EndpointSession['open']>>;
    try {
      result = await this.session.open(message.topic, message.payload, this.clock());
    } catch (error) {
      if (error instanceof ProviderError) {
        // Our fault, not the peer's: say so where the operator looks (no secret is in the text).
        this.emit('warning', `key provider failed: ${error.message}`);
        result = { ok: false, reason: 'provider-failed' };
      } else {
        // The core must not throw on a peer's bytes; if it ever does, it is still a rejection.
        result = { ok: false, reason: 'bad-field' };
      }
    }
    if (result.ok) {
      const v = result.value;
      try {
        await this.durable();
      } catch (error) {
        // Not stored means it could be accepted again after a crash: do not release it.
        this.emit('warning', `state not saved, message withheld: ${errorText(error)}`);
        return { ok: false, rejection: { reason: 'not-stored', topic: message.topic, sender: v.sender }, quiet: false };
      }
      return {
        ok: true,
        message: {
          topic: message.topic,
          data: Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength),
          qos: message.qos,
          retain: message.retain,
          pqc: { sender: v.sender, keyId: v.keyId, keyEpoch: v.keyEpoch, seq: v.seq.toString(), timestamp: v.timestamp, suite: v.suite },
        },
      };
    }
    const rejection: Rejection = { reason: result.reason, topic: message.topic };
    const sender = claimedSender(message.payload, this.session.limits);
    if (sender !== undefined) rejection.sender = sender;
    return { ok: false, rejection, quiet: QUIET_REASONS.has(result.reason) };
  }



  private listenersFor(topic: string): VerdictListener[] {
    const out: VerdictListener[] = [];
    for (const filters of this.verdictListeners.values()) {
      for (const [filter, listener] of filters) {
        if (topicMatches(filter, topic)) {
          out.push(listener);
          break; // one verdict per node, even if two of its filters match
        }
      }
    }
    return out;
  }
}

/**
 * The sender an envelope claims (unverified: for rejection reports and audit entries only), or
 * undefined. Best effort and cheap: a size-checked decode, no crypto.
 */
export function claimedSender(payload: Uint8Array, limits: EndpointSession['limits']): string | undefined {
  if (!(payload instanceof Uint8Array) || payload.length > limits.maxEnvelopeBytes) return undefined;
  const type = peekType(payload);
  const decoded = type === 'topicEnvelope' ? decodeTopicEnvelope(payload, limits)
    : type === 'compactEnvelope' ? decodeCompactEnvelope(payload, limits)
    : decodeDirectEnvelope(payload, limits);
  return decoded.ok ? decoded.value.senderId : undefined;
}

export function describeReason(reason: Reason): string {
  return REASONS[reason];
}
