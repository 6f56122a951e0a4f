/** Status mapping and the coalescing status reporter (lib/io/node-status.ts). */
import assert from 'node:assert/strict';
import { connectionStatus, problemStatus, receivedCounters, sentCounters, StatusReporter, type NodeStatus } from '../../lib/io/node-status';

describe('io/node-status', function () {
  it('maps connection states like core mqtt nodes, counters replacing "connected"', function () {
    assert.deepEqual(connectionStatus('connected'), { fill: 'green', shape: 'dot', text: 'node-red:common.status.connected' });
    assert.deepEqual(connectionStatus('connected', 'sent 3'), { fill: 'green', shape: 'dot', text: 'sent 3' });
    assert.equal(connectionStatus('reconnecting', 'sent 3').text, 'node-red:common.status.connecting');
    assert.equal(connectionStatus('idle').fill, 'red');
    assert.deepEqual(problemStatus('pqc-secure-in', 'no-ca'), { fill: 'red', shape: 'ring', text: 'pqc-secure-in.status.no-ca' });
  });

  it('formats short counters', function () {
    assert.equal(sentCounters(0, 0), '');
    assert.equal(sentCounters(12, 0), 'sent 12');
    assert.equal(sentCounters(12, 2), 'sent 12 · err 2');
    assert.equal(receivedCounters(0, 0), '');
    assert.equal(receivedCounters(120, 3), 'ok 120 · rej 3');
    assert.equal(receivedCounters(120, 3, 4), 'ok 120 · rej 3 · drop 4');
  });

  it('shows the first update at once and ends a burst with the latest value', async function () {
    const shown: NodeStatus[] = [];
    let n = 0;
    let flushed!: () => void;
    const lastShown = new Promise<void>((resolve) => (flushed = resolve));
    const reporter = new StatusReporter(
      (s) => {
        shown.push(s);
        if (s.text === 'n 5') flushed();
      },
      () => ({ text: `n ${n}` }),
      5,
    );
    for (n = 1; n <= 5; n++) reporter.update();
    n = 5;
    assert.deepEqual(shown, [{ text: 'n 1' }], 'the burst is coalesced');
    await lastShown;
    assert.deepEqual(shown, [{ text: 'n 1' }, { text: 'n 5' }]);
    reporter.close();
    reporter.update();
    assert.equal(shown.length, 2, 'nothing after close');
  });
});
