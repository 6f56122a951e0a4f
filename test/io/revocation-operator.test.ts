/**
 * The operator side of revocation (lib/io/revocation-operator.ts) against fakes: requests wait
 * until the retained state is known, nothing is issued while offline, and a sequence number taken
 * by another operator at the same time is detected and the request issued again on top (I7).
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createCa, toHex, type CaKeyPair } from '../../lib';
import { RevocationOperator, parseRevocationRequest } from '../../lib/io/revocation-operator';
import { EMPTY_REVOCATIONS, applyRevocation, issueRevocation, type RevocationState } from '../../lib/trust/revocation';
import { ALL_KEYS } from '../../lib/wire/revocation';

const TOPIC = 'pqc/revocations';

/** A session holding a revocation state, an endpoint emitting its events, a connection recording publishes. */
class Fakes {
  state: RevocationState = EMPTY_REVOCATIONS;
  readonly endpoint = new EventEmitter();
  readonly connection = Object.assign(new EventEmitter(), {
    subscribed: false,
    published: [] as Uint8Array[],
    isSubscribed: (filter: string) => filter === TOPIC && this.connection.subscribed,
    publish: async (_topic: string, payload: Buffer) => {
      this.connection.published.push(new Uint8Array(payload));
      this.onPublish(new Uint8Array(payload));
    },
  });
  /** What the broker does with a publish; by default it echoes it back at once. */
  onPublish: (bytes: Uint8Array) => void = (bytes) => this.deliver(bytes);

  constructor(readonly ca: CaKeyPair) {}

  readonly session = { revocationTopic: TOPIC, revocationState: () => this.state };

  /** An update arriving on the revocation topic, as the endpoint handles it. */
  deliver(bytes: Uint8Array): void {
    const r = applyRevocation(this.state, bytes, TOPIC, TOPIC, this.ca.publicKey);
    if (r.ok) {
      this.state = r.value.state;
      this.endpoint.emit('revocation', { seq: r.value.state.seq, added: [], untrusted: [], selfRevoked: false });
    } else if (r.reason !== 'duplicate') {
      this.endpoint.emit('revocation-rejected', { topic: TOPIC, reason: r.reason });
    }
  }

  subscribe(): void {
    this.connection.subscribed = true;
    this.connection.emit('subscribed', TOPIC);
  }

  operator(extra: { syncWaitMs?: number } = {}): RevocationOperator {
    return new RevocationOperator({
      ca: this.ca,
      session: this.session,
      endpoint: this.endpoint as never,
      connection: this.connection as never,
      settleMs: 1,
      confirmMs: 10_000,
      ...extra,
    });
  }
}

describe('io/revocation-operator', function () {
  let ca: CaKeyPair;
  const request = (id: string) => parseRevocationRequest({ device_id: id });

  before(function () {
    ca = createCa();
  });

  it('I7 waits for the retained update before issuing, and builds on it', async function () {
    const f = new Fakes(ca);
    const op = f.operator();
    const pending = op.revoke(request('sensor-2'));
    await Promise.resolve();
    assert.equal(f.connection.published.length, 0, 'nothing issued before the state is known');
    // SUBACK, then the retained update (seq 4, sensor-1) arrives: the next one is seq 5, cumulative.
    const retained = issueRevocation(ca, { ...EMPTY_REVOCATIONS, seq: 3n }, [{ deviceId: 'sensor-1', keyId: ALL_KEYS }], TOPIC, 0);
    f.subscribe();
    f.deliver(retained.bytes);
    const outcome = await pending;
    assert.equal(outcome.seq, 4n + 1n);
    assert.equal(outcome.total, 2);
    assert.equal(outcome.confirmed, true);
    assert.deepEqual(f.state.entries.map((e) => e.deviceId), ['sensor-1', 'sensor-2']);
    op.close();
  });

  it('I7 a sequence number taken by another operator at the same time is issued again on top', async function () {
    const f = new Fakes(ca);
    const op = f.operator();
    f.subscribe();
    // The first publish loses the race: another operator's seq 0 reaches receivers first.
    let first = true;
    f.onPublish = (bytes) => {
      if (first) {
        first = false;
        f.deliver(issueRevocation(ca, EMPTY_REVOCATIONS, [{ deviceId: 'rogue-7', keyId: ALL_KEYS }], TOPIC, 0).bytes);
      }
      f.deliver(bytes);
    };
    const outcome = await op.revoke(request('sensor-1'));
    assert.equal(f.connection.published.length, 2);
    assert.equal(outcome.seq, 1n);
    assert.deepEqual(f.state.entries.map((e) => [e.deviceId, toHex(e.keyId)]), [['rogue-7', toHex(ALL_KEYS)], ['sensor-1', toHex(ALL_KEYS)]]);
    // Already revoked now: no third update.
    const again = await op.revoke(request('sensor-1'));
    assert.equal(again.alreadyRevoked, true);
    assert.equal(f.connection.published.length, 2);
    op.close();
  });

  it('issues nothing while offline; a request fails when the state cannot be learnt', async function () {
    const f = new Fakes(ca);
    const op = f.operator({ syncWaitMs: 5 });
    f.subscribe();
    await op.revoke(request('sensor-1'));
    f.connection.subscribed = false;
    f.connection.emit('status', 'reconnecting');
    assert.equal(op.isSynced, false);
    await assert.rejects(op.revoke(request('sensor-2')), /not known yet/);
    assert.equal(f.connection.published.length, 1);
    op.close();
    await assert.rejects(op.revoke(request('sensor-2')), /closed/);
  });

  it('parses requests: device id, key id as hex or fingerprint, absent key id = every key', function () {
    assert.deepEqual(parseRevocationRequest({ device_id: 'a' }).keyId, ALL_KEYS);
    const hex = '0123456789abcdef0123456789ABCDEF';
    assert.equal(toHex(parseRevocationRequest({ device_id: 'a', key_id: hex }).keyId), hex.toLowerCase());
    assert.equal(toHex(parseRevocationRequest({ device_id: 'a', key_id: hex.match(/.{4}/g)!.join(':') }).keyId), hex.toLowerCase());
    assert.throws(() => parseRevocationRequest(null), /must be an object/);
    assert.throws(() => parseRevocationRequest({ device_id: 'a/b' }), /not a valid device id/);
    assert.throws(() => parseRevocationRequest({ device_id: 'a', key_id: '' }), /must be 32 hex digits/);
  });
});
