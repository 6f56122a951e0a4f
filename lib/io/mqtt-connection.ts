/**
 * The MQTT connection a `pqc-config` node owns and shares with the nodes that use it
 * (DESIGN §2, §3). This is the only module in the project that imports `mqtt`.
 *
 * Lifecycle follows core Node-RED `mqtt-broker`: the first `register` connects, the last
 * `deregister` disconnects, `close` ends it for good. Subscriptions are kept per filter and per
 * owner so that a partial redeploy removes exactly the subscriptions of the node that stopped.
 *
 * Payloads are always raw Buffers in both directions: the security data lives inside them.
 * Nothing here knows about envelopes or Node-RED; it is tested on its own against a broker.
 */

import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { connect, type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt';
import { isValidTopicFilter, isValidTopicName, topicMatches } from '../trust/topics';

export type QoS = 0 | 1 | 2;
export type ProtocolVersion = 4 | 5;

/**
 * Where the connection is. `idle` means nobody uses it (never connected, or the last user left);
 * `closed` means its owner has been closed and it will never connect again.
 */
export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'disconnected' | 'closed';

/** TLS settings as Node-RED's `tls-config` node fills them in (`addTLSOptions`). */
export interface TlsOptions {
  ca?: string | Buffer | Array<string | Buffer>;
  cert?: string | Buffer;
  key?: string | Buffer;
  passphrase?: string;
  rejectUnauthorized?: boolean;
  servername?: string;
  alpnProtocol?: string;
}

export interface MqttConnectionOptions {
  host: string;
  port: number;
  /** 4 = MQTT 3.1.1, 5 = MQTT 5.0. */
  protocolVersion?: ProtocolVersion;
  /** Empty or absent: a random id, so two flows never kick each other off the broker. */
  clientId?: string;
  keepaliveSeconds?: number;
  cleanSession?: boolean;
  /** MQTT 5 with cleanSession false: how long the broker keeps the session (default 1 day). */
  sessionExpirySeconds?: number;
  username?: string;
  password?: string;
  /** Present means TLS (mqtts://); absent means plain TCP. */
  tls?: TlsOptions;
  /** Messages held while not connected; one more is refused, never silently dropped. */
  queueLimit?: number;
  reconnectPeriodMs?: number;
  connectTimeoutMs?: number;
}

export interface PublishOptions {
  qos: QoS;
  retain: boolean;
}

export interface IncomingMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
}

/**
 * Called once per received MQTT message for each distinct handler whose filter matches, even
 * when several of its filters match — so a handler that decrypts does it once per message.
 */
export type MessageHandler = (message: IncomingMessage) => void | Promise<void>;

/** What the broker told us in CONNACK (MQTT 5 only; empty under 3.1.1). */
export interface BrokerLimits {
  /** Largest packet the broker accepts, in bytes, when it announced one. */
  maximumPacketSize?: number;
}

export const DEFAULT_QUEUE_LIMIT = 100;
const DEFAULT_KEEPALIVE_SECONDS = 60;
const DEFAULT_RECONNECT_PERIOD_MS = 5000;
const DEFAULT_SESSION_EXPIRY_SECONDS = 86_400;
const DEFAULT_CONNECT_TIMEOUT_MS = 30000;
/** Longest wait for a clean MQTT DISCONNECT before the socket is destroyed (core uses 2 s). */
const END_TIMEOUT_MS = 2000;

/** Local refusals carry a code so callers (and tests) can tell them apart without parsing text. */
export type PublishErrorCode = 'queue-full' | 'connection-closed' | 'packet-too-large' | 'bad-topic' | 'bad-qos';

export class PublishError extends Error {
  readonly code: PublishErrorCode;
  constructor(code: PublishErrorCode, message: string) {
    super(message);
    this.name = 'PublishError';
    this.code = code;
  }
}

interface QueuedPublish {
  topic: string;
  payload: Buffer;
  options: PublishOptions;
  resolve: () => void;
  reject: (error: Error) => void;
}

interface Subscriber {
  qos: QoS;
  handler: MessageHandler;
}

/** A message sent first on every (re)connect, before queued messages: the key announcement. */
export type BirthMessageProvider = () => Promise<{ topic: string; payload: Buffer; options: PublishOptions } | undefined>;

export interface MqttConnectionEvents {
  status: [state: ConnectionState];
  /** The broker acknowledged a subscription (SUBACK) on the current connection. */
  subscribed: [filter: string];
  /** Something went wrong that nobody's promise reports (socket errors, refused SUBACK, birth). */
  warning: [message: string];
}

/**
 * Size of the MQTT PUBLISH packet this connection would send for `payloadBytes` on `topic`:
 * fixed header, topic, packet id when QoS > 0, and (MQTT 5) an empty property length.
 */
export function publishPacketSize(topic: string, payloadBytes: number, qos: QoS, protocolVersion: ProtocolVersion): number {
  const remaining = 2 + Buffer.byteLength(topic, 'utf8') + (qos > 0 ? 2 : 0) + (protocolVersion === 5 ? 1 : 0) + payloadBytes;
  return 1 + varIntLength(remaining) + remaining;
}

function varIntLength(value: number): number {
  if (value < 128) return 1;
  if (value < 16384) return 2;
  if (value < 2097152) return 3;
  return 4;
}

function isQoS(value: unknown): value is QoS {
  return value === 0 || value === 1 || value === 2;
}

export function randomClientId(): string {
  // 21 characters: inside MQTT 3.1.1's guaranteed 23, and unguessable enough not to collide.
  return `pqc-iiot-${randomBytes(6).toString('hex')}`;
}

function checkOptions(options: MqttConnectionOptions): void {
  if (typeof options.host !== 'string' || options.host.trim() === '') throw new Error('broker host is empty');
  if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
    throw new Error('broker port must be an integer from 1 to 65535');
  }
  if (options.protocolVersion !== undefined && options.protocolVersion !== 4 && options.protocolVersion !== 5) {
    throw new Error('MQTT protocol version must be 4 (3.1.1) or 5');
  }
  const keepalive = options.keepaliveSeconds;
  if (keepalive !== undefined && (!Number.isInteger(keepalive) || keepalive < 0 || keepalive > 65535)) {
    throw new Error('keepalive must be an integer from 0 to 65535 seconds');
  }
  const limit = options.queueLimit;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
    throw new Error('queue limit must be a non-negative integer');
  }
}

export class MqttConnection extends EventEmitter<MqttConnectionEvents> {
  readonly clientId: string;
  readonly protocolVersion: ProtocolVersion;
  private readonly options: MqttConnectionOptions;
  private readonly queueLimit: number;
  private readonly users = new Set<string>();
  /** filter → owner id → subscriber. */
  private readonly subscriptions = new Map<string, Map<string, Subscriber>>();
  private readonly queue: QueuedPublish[] = [];
  /** Publishes handed to MQTT.js and not yet acknowledged; rejected if we close first. */
  private readonly inFlight = new Set<QueuedPublish>();
  private client: MqttClient | undefined;
  private currentState: ConnectionState = 'idle';
  /** Connected and the birth message is out: publishes may go straight to the client. */
  private ready = false;
  private brokerLimits: BrokerLimits = {};
  private birth: BirthMessageProvider | undefined;
  /** Filters the broker has acknowledged on the current connection. */
  private readonly acknowledged = new Set<string>();

  constructor(options: MqttConnectionOptions) {
    super();
    checkOptions(options);
    this.options = { ...options };
    this.clientId = options.clientId && options.clientId.trim() !== '' ? options.clientId.trim() : randomClientId();
    this.protocolVersion = options.protocolVersion ?? 4;
    this.queueLimit = options.queueLimit ?? DEFAULT_QUEUE_LIMIT;
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  get connected(): boolean {
    return this.currentState === 'connected';
  }

  /** The broker's Maximum Packet Size from the last CONNACK (MQTT 5), if it sent one. */
  get maximumPacketSize(): number | undefined {
    return this.brokerLimits.maximumPacketSize;
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  get userCount(): number {
    return this.users.size;
  }

  /** Filters currently subscribed on behalf of at least one owner (what the broker is told). */
  subscribedFilters(): string[] {
    return [...this.subscriptions.keys()];
  }

  /** True once the broker acknowledged `filter` on the current connection. */
  isSubscribed(filter: string): boolean {
    return this.acknowledged.has(filter);
  }

  /** Listens to state changes; returns the function that removes exactly this listener. */
  onStatus(listener: (state: ConnectionState) => void): () => void {
    this.on('status', listener);
    return () => {
      this.off('status', listener);
    };
  }

  /** Sets the message published first on every connect (replaces any earlier one). */
  setBirthMessage(provider: BirthMessageProvider | undefined): void {
    this.birth = provider;
  }

  register(userId: string): void {
    if (this.currentState === 'closed') return;
    this.users.add(userId);
    if (this.client === undefined) this.start();
  }

  /**
   * Removes a user and every subscription it still owns (belt and braces for partial redeploy);
   * disconnects when it was the last. `done` is always called, once.
   */
  deregister(userId: string, done: () => void): void {
    this.users.delete(userId);
    this.unsubscribeAll(userId);
    if (this.users.size > 0 || this.client === undefined) {
      done();
      return;
    }
    this.stop('connection closed: no node uses it any more').then(done, done);
  }

  subscribe(filter: string, qos: QoS, handler: MessageHandler, ownerId: string): void {
    if (!isValidTopicFilter(filter)) throw new Error(`invalid topic filter "${filter}"`);
    if (!isQoS(qos)) throw new Error('QoS must be 0, 1 or 2');
    let owners = this.subscriptions.get(filter);
    const previousQos = owners ? maxQos(owners) : undefined;
    if (!owners) {
      owners = new Map();
      this.subscriptions.set(filter, owners);
    }
    owners.set(ownerId, { qos, handler });
    const wanted = maxQos(owners);
    if (this.connected && wanted !== previousQos) this.sendSubscribe(filter, wanted);
  }

  /** Removes only `ownerId`'s subscription to `filter`; tells the broker when nobody is left. */
  unsubscribe(filter: string, ownerId: string): void {
    const owners = this.subscriptions.get(filter);
    if (!owners || !owners.delete(ownerId)) return;
    if (owners.size === 0) {
      this.subscriptions.delete(filter);
      this.acknowledged.delete(filter);
      if (this.connected && this.client) this.client.unsubscribe(filter, (error) => this.warnIf(error, `unsubscribe from "${filter}"`));
    }
  }

  unsubscribeAll(ownerId: string): void {
    for (const filter of [...this.subscriptions.keys()]) this.unsubscribe(filter, ownerId);
  }

  /**
   * Publishes a raw payload. Resolves once MQTT.js has written it (QoS 0) or the broker has
   * acknowledged it (QoS 1/2). While not connected it waits in a bounded queue; a full queue,
   * a closed connection or a packet the broker said it would refuse reject the promise.
   */
  publish(topic: string, payload: Buffer | Uint8Array, options: PublishOptions): Promise<void> {
    if (!isValidTopicName(topic)) return Promise.reject(new PublishError('bad-topic', 'topic must be a non-empty MQTT topic name without wildcards'));
    if (!isQoS(options.qos)) return Promise.reject(new PublishError('bad-qos', 'QoS must be 0, 1 or 2'));
    if (this.currentState === 'closed') return Promise.reject(new PublishError('connection-closed', 'connection is closed'));
    const buffer = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    const tooLarge = this.checkPacketSize(topic, buffer.length, options.qos);
    if (tooLarge) return Promise.reject(tooLarge);
    return new Promise<void>((resolve, reject) => {
      const item: QueuedPublish = { topic, payload: buffer, options: { qos: options.qos, retain: options.retain === true }, resolve, reject };
      if (this.ready) {
        this.send(item);
      } else if (this.queue.length >= this.queueLimit) {
        reject(new PublishError('queue-full', `not connected and the outbound queue is full (${this.queueLimit} messages)`));
      } else {
        this.queue.push(item);
      }
    });
  }

  /** Ends the connection for good; queued and unacknowledged publishes are rejected. */
  async close(): Promise<void> {
    if (this.currentState === 'closed') return;
    this.users.clear();
    this.subscriptions.clear();
    this.birth = undefined;
    await this.stop('connection closed');
    // Listeners stay: each user removes its own (onStatus returns the remover); 'closed' is
    // the last status they see.
    this.setState('closed');
  }

  private checkPacketSize(topic: string, payloadBytes: number, qos: QoS): PublishError | undefined {
    const limit = this.brokerLimits.maximumPacketSize;
    if (limit === undefined) return undefined;
    const size = publishPacketSize(topic, payloadBytes, qos, this.protocolVersion);
    if (size <= limit) return undefined;
    return new PublishError('packet-too-large', `MQTT packet of ${size} bytes exceeds the broker's maximum packet size of ${limit} bytes`);
  }

  private clientOptions(): IClientOptions {
    const o = this.options;
    const clientOptions: IClientOptions = {
      host: o.host.trim(),
      port: o.port,
      protocol: o.tls ? 'mqtts' : 'mqtt',
      protocolVersion: this.protocolVersion,
      clientId: this.clientId,
      keepalive: o.keepaliveSeconds ?? DEFAULT_KEEPALIVE_SECONDS,
      clean: o.cleanSession ?? true,
      reconnectPeriod: o.reconnectPeriodMs ?? DEFAULT_RECONNECT_PERIOD_MS,
      connectTimeout: o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      // We resubscribe ourselves on every CONNACK from our own table, which is the truth after
      // partial redeploys; MQTT.js's own copy would resurrect filters a stopped node dropped.
      resubscribe: false,
    };
    if (this.protocolVersion === 5 && clientOptions.clean === false) {
      // MQTT 5 ends a session at disconnect unless told otherwise: without an expiry interval,
      // "clean session off" would keep nothing across a reconnect, unlike MQTT 3.1.1.
      clientOptions.properties = { sessionExpiryInterval: o.sessionExpirySeconds ?? DEFAULT_SESSION_EXPIRY_SECONDS };
    }
    if (o.username) clientOptions.username = o.username;
    if (o.password) clientOptions.password = o.password;
    if (o.tls) {
      const { alpnProtocol, ...rest } = o.tls;
      Object.assign(clientOptions, rest);
      if (alpnProtocol) clientOptions.ALPNProtocols = [alpnProtocol];
    }
    return clientOptions;
  }

  private start(): void {
    this.brokerLimits = {};
    this.acknowledged.clear();
    this.ready = false;
    this.setState('connecting');
    const client = connect(this.clientOptions());
    this.client = client;
    // MQTT.js emits these on its own object only; a replaced or ended client must not touch us.
    const current = () => this.client === client;
    client.on('connect', (connack) => {
      if (current()) this.onConnect(client, connack);
    });
    client.on('message', (topic, payload, packet) => {
      if (current()) this.dispatch(topic, payload, packet);
    });
    client.on('reconnect', () => {
      if (current()) this.setState('reconnecting');
    });
    client.on('close', () => {
      if (!current()) return;
      this.ready = false;
      this.acknowledged.clear();
      if (this.currentState === 'connected') this.setState('disconnected');
    });
    client.on('offline', () => {
      if (!current()) return;
      this.ready = false;
      if (this.currentState === 'connected') this.setState('disconnected');
    });
    client.on('error', (error) => {
      // Without a listener MQTT.js's 'error' would throw and take Node-RED down.
      if (current()) this.emit('warning', `MQTT: ${error.message}`);
    });
  }

  private async stop(reason: string): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.ready = false;
    this.brokerLimits = {};
    for (const item of this.queue.splice(0)) item.reject(new PublishError('connection-closed', reason));
    for (const item of [...this.inFlight]) {
      this.inFlight.delete(item);
      item.reject(new PublishError('connection-closed', `${reason} before the broker acknowledged the message`));
    }
    if (this.currentState !== 'closed') this.setState('idle');
    if (!client) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        client.end(true);
        resolve();
      }, END_TIMEOUT_MS);
      client.end(false, {}, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    client.removeAllListeners();
    // An 'error' after end (e.g. a late socket reset) must still find a listener.
    client.on('error', () => undefined);
  }

  private onConnect(client: MqttClient, connack: IConnackPacket): void {
    const maximumPacketSize = this.protocolVersion === 5 ? connack.properties?.maximumPacketSize : undefined;
    this.brokerLimits = typeof maximumPacketSize === 'number' && maximumPacketSize > 0 ? { maximumPacketSize } : {};
    this.setState('connected');
    for (const [filter, owners] of this.subscriptions) this.sendSubscribe(filter, maxQos(owners));
    void this.publishBirthThenFlush(client);
  }

  private async publishBirthThenFlush(client: MqttClient): Promise<void> {
    if (this.birth) {
      try {
        const message = await this.birth();
        const tooLarge = message && this.checkPacketSize(message.topic, message.payload.length, message.options.qos);
        if (tooLarge) {
          // Sending it anyway would make the broker drop the connection, over and over.
          this.emit('warning', `birth message on "${message.topic}" not published: ${tooLarge.message}`);
        } else if (message && this.client === client && this.connected) {
          await client.publishAsync(message.topic, message.payload, message.options);
        }
      } catch (error) {
        this.emit('warning', `birth message not published: ${(error as Error).message}`);
      }
    }
    if (this.client !== client || !this.connected) return;
    this.ready = true;
    for (const item of this.queue.splice(0)) {
      // Recheck: the broker's limit is only known now, after CONNACK.
      const tooLarge = this.checkPacketSize(item.topic, item.payload.length, item.options.qos);
      if (tooLarge) item.reject(tooLarge);
      else this.send(item);
    }
  }

  private send(item: QueuedPublish): void {
    const client = this.client;
    if (!client) {
      item.reject(new PublishError('connection-closed', 'connection is closed'));
      return;
    }
    this.inFlight.add(item);
    client.publish(item.topic, item.payload, item.options, (error) => {
      if (!this.inFlight.delete(item)) return; // already rejected by stop()
      if (error) item.reject(error);
      else item.resolve();
    });
  }

  private sendSubscribe(filter: string, qos: QoS): void {
    const client = this.client;
    if (!client) return;
    client.subscribe(filter, { qos }, (error, granted) => {
      if (error) {
        this.warnIf(error, `subscribe to "${filter}"`);
      } else if (granted?.some((g) => g.qos === 128)) {
        this.emit('warning', `broker refused the subscription to "${filter}"`);
      } else if (this.client === client && this.subscriptions.has(filter)) {
        this.acknowledged.add(filter);
        this.emit('subscribed', filter);
      }
    });
  }

  private dispatch(topic: string, payload: Buffer, packet: IPublishPacket): void {
    const handlers = new Set<MessageHandler>();
    for (const [filter, owners] of this.subscriptions) {
      if (!topicMatches(filter, topic)) continue;
      for (const subscriber of owners.values()) handlers.add(subscriber.handler);
    }
    const message: IncomingMessage = { topic, payload, qos: isQoS(packet.qos) ? packet.qos : 0, retain: packet.retain === true };
    for (const handler of handlers) {
      try {
        const pending = handler(message);
        if (pending && typeof pending.catch === 'function') {
          pending.catch((error: unknown) => this.emit('warning', `message handler failed: ${errorText(error)}`));
        }
      } catch (error) {
        // A handler's bug must not stop delivery to the others, nor crash the runtime.
        this.emit('warning', `message handler failed: ${errorText(error)}`);
      }
    }
  }

  private warnIf(error: Error | undefined | null, what: string): void {
    if (error) this.emit('warning', `${what} failed: ${error.message}`);
  }

  private setState(state: ConnectionState): void {
    if (state === this.currentState) return;
    this.currentState = state;
    this.emit('status', state);
  }
}

function maxQos(owners: Map<string, Subscriber>): QoS {
  let qos: QoS = 0;
  for (const s of owners.values()) if (s.qos > qos) qos = s.qos;
  return qos;
}

/** The message of a thrown value, for warnings (never a stack). */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
