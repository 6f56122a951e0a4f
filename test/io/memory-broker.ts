/**
 * A few-line in-memory MQTT for endpoint tests: connections that implement the parts of
 * MqttConnection the endpoint uses, joined by a bus with retained messages. It delivers a
 * message once per matching subscription, as brokers may with overlapping subscriptions.
 */
import { topicMatches } from '../../lib/trust/topics';
import { publishPacketSize, type BirthMessageProvider, type IncomingMessage, type MessageHandler, type PublishOptions, type QoS } from '../../lib/io/mqtt-connection';
import type { EndpointConnection } from '../../lib/io/endpoint';

export class MemoryBus {
  readonly connections: MemoryConnection[] = [];
  readonly retained = new Map<string, Buffer>();
  /** Every publish that reached the bus, as the broker would see it. */
  readonly log: Array<{ topic: string; payload: Buffer; retain: boolean }> = [];

  connection(): MemoryConnection {
    const c = new MemoryConnection(this);
    this.connections.push(c);
    return c;
  }

  /** Delivers like a broker; returns when every handler has finished. */
  async deliver(topic: string, payload: Buffer, options: PublishOptions): Promise<void> {
    this.log.push({ topic, payload, retain: options.retain });
    if (options.retain) this.retained.set(topic, payload);
    const pending: Array<void | Promise<void>> = [];
    for (const c of this.connections) {
      for (const s of c.subscriptions) {
        if (topicMatches(s.filter, topic)) pending.push(s.handler({ topic, payload, qos: options.qos, retain: false }));
      }
    }
    await Promise.all(pending);
  }
}

export class MemoryConnection implements EndpointConnection {
  readonly protocolVersion = 5 as const;
  maximumPacketSize: number | undefined;
  readonly subscriptions: Array<{ filter: string; qos: QoS; handler: MessageHandler; ownerId: string }> = [];
  readonly published: Array<{ topic: string; payload: Buffer; options: PublishOptions }> = [];
  private birth: BirthMessageProvider | undefined;

  constructor(private readonly bus: MemoryBus) {}

  setBirthMessage(provider: BirthMessageProvider | undefined): void {
    this.birth = provider;
  }

  /** Publishes the birth message, as the real connection does on CONNACK. */
  async connect(): Promise<void> {
    const message = this.birth ? await this.birth() : undefined;
    if (message) await this.publish(message.topic, message.payload, message.options);
  }

  subscribe(filter: string, qos: QoS, handler: MessageHandler, ownerId: string): void {
    this.subscriptions.push({ filter, qos, handler, ownerId });
  }

  /** Retained messages for this connection's filters, as a broker sends them after SUBACK. */
  async deliverRetained(): Promise<void> {
    for (const [topic, payload] of this.bus.retained) {
      const handlers = new Set(this.subscriptions.filter((s) => topicMatches(s.filter, topic)).map((s) => s.handler));
      for (const handler of handlers) {
        const message: IncomingMessage = { topic, payload, qos: 1, retain: true };
        await handler(message);
      }
    }
  }

  unsubscribe(filter: string, ownerId: string): void {
    const i = this.subscriptions.findIndex((s) => s.filter === filter && s.ownerId === ownerId);
    if (i >= 0) this.subscriptions.splice(i, 1);
  }

  async publish(topic: string, payload: Buffer | Uint8Array, options: PublishOptions): Promise<void> {
    const buffer = Buffer.from(payload);
    if (this.maximumPacketSize !== undefined && publishPacketSize(topic, buffer.length, options.qos, 5) > this.maximumPacketSize) {
      throw new Error('packet too large (memory broker)');
    }
    this.published.push({ topic, payload: buffer, options });
    await this.bus.deliver(topic, buffer, options);
  }
}
