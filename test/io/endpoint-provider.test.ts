/** A failing key provider (e.g. a removed PKCS#11 token) is reported as such, not as a bad message. */
import assert from 'node:assert/strict';
import { SecureEndpoint, type EndpointConnection, type EndpointSession, type Verdict } from '../../lib/io/endpoint';
import type { MessageHandler } from '../../lib/io/mqtt-connection';
import { DEFAULT_LIMITS } from '../../lib/limits';
import { ProviderError } from '../../lib/session/provider';

describe('io/endpoint: provider failures', () => {
  it('an open() that throws ProviderError gives reason provider-failed and a warning; other throws stay bad-field', async () => {
    let dataHandler: MessageHandler | undefined;
    const connection = {
      subscribe: (filter: string, _qos: number, handler: MessageHandler) => {
        if (filter === 'plant/#') dataHandler = handler;
      },
      unsubscribe: () => undefined,
      publish: async () => undefined,
      setBirthMessage: () => undefined,
      maximumPacketSize: undefined,
      protocolVersion: 4,
    } as unknown as EndpointConnection;
    let fail: Error = new ProviderError('token-removed', 'token "plant-a" was removed');
    const session = {
      deviceId: 'gw',
      limits: DEFAULT_LIMITS,
      revocationTopic: 'pqc/revocations',
      announcementTopic: () => 'pqc/keys/gw',
      announcementFilter: () => 'pqc/keys/+',
      isAnnouncementTopic: () => false,
      isTopicKeyTopic: () => false,
      topicKeyFilter: (f: string) => `pqc/topic-keys/+/${f}`,
      batchManifestFilter: () => 'pqc/batches/+',
      isBatchManifestTopic: () => false,
      expirePending: () => 0,
      open: async () => {
        throw fail;
      },
    } as unknown as EndpointSession;
    const endpoint = new SecureEndpoint({ session, connection, ownerId: 'cfg' });
    const warnings: string[] = [];
    endpoint.on('warning', (w) => warnings.push(w));
    const verdicts: Verdict[] = [];
    endpoint.subscribe('plant/#', 1, (v) => verdicts.push(v), 'in');
    const message = { topic: 'plant/a', payload: Buffer.from('x'), qos: 1 as const, retain: false };
    await dataHandler!(message);
    fail = new Error('unexpected');
    await dataHandler!(message);
    assert.deepEqual(verdicts.map((v) => (v.ok ? 'ok' : v.rejection.reason)), ['provider-failed', 'bad-field']);
    assert.equal(verdicts[0].ok === false && verdicts[0].quiet, false, 'reported, not a quiet drop');
    assert.deepEqual(warnings, ['key provider failed: token "plant-a" was removed']);
  });
});
