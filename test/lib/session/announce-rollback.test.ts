/** I2: an older announcement of the trusted key (superseded certificate) cannot replace the newer one. */
import assert from 'node:assert/strict';
import { DAY, T0, assertReason, certify, keysFor, session } from '../fixtures';

describe('announcement rollback (I2)', function () {
  this.timeout(30_000);

  it('I2 a replayed older announcement of the same key, with wider rights, is refused as rollback', async () => {
    const keys = keysFor({ id: 'ann-rb' });
    const wide = session(certify(keys, { topics: ['plant/#'] }));
    const narrow = session(certify(keys, { topics: ['plant/line-1/#'] }));
    const receiver = session(certify(keysFor({ id: 'ann-rb-rx' })));
    const old = await wide.buildAnnouncement(T0);
    const current = await narrow.buildAnnouncement(T0 + DAY);
    assert.ok((await receiver.handleAnnouncement('pqc/keys/ann-rb', current, T0 + DAY)).ok);
    assertReason(await receiver.handleAnnouncement('pqc/keys/ann-rb', old, T0 + DAY), 'rollback');
    assert.deepEqual(receiver.listPeers()[0]?.topics, ['plant/line-1/#']);
  });

  it('I2 a newer announcement of the same key (re-issued certificate) replaces the older one', async () => {
    const keys = keysFor({ id: 'ann-new' });
    const first = session(certify(keys, { topics: ['plant/#'] }));
    const renewed = session(certify(keys, { topics: ['plant/a/#'] }));
    const receiver = session(certify(keysFor({ id: 'ann-new-rx' })));
    assert.ok((await receiver.handleAnnouncement('pqc/keys/ann-new', await first.buildAnnouncement(T0), T0)).ok);
    const r = await receiver.handleAnnouncement('pqc/keys/ann-new', await renewed.buildAnnouncement(T0 + 1000), T0 + 1000);
    assert.ok(r.ok && r.value.changed);
    assert.deepEqual(receiver.listPeers()[0]?.topics, ['plant/a/#']);
  });
});
