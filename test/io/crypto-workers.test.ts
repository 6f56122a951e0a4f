/** The process-wide worker-thread choice of pqc-config nodes (lib/io/crypto-workers.ts). */
import assert from 'node:assert/strict';
import { cryptoWorkersInEffect, holdCryptoWorkersOff } from '../../lib/io/crypto-workers';
import { cryptoOffload, setCryptoOffload, type OffloadMode } from '../../lib/crypto/worker-pool';

describe('io/crypto-workers', function () {
  let before: OffloadMode;

  beforeEach(function () {
    before = cryptoOffload();
  });

  afterEach(function () {
    setCryptoOffload(before);
  });

  it('"off" holds for the whole process until the last request is released, then the earlier mode returns', function () {
    for (const earlier of ['auto', 'always'] as const) {
      setCryptoOffload(earlier);
      const releaseA = holdCryptoWorkersOff();
      assert.equal(cryptoOffload(), 'never');
      assert.equal(cryptoWorkersInEffect(), 'off');
      const releaseB = holdCryptoWorkersOff();
      releaseA();
      assert.equal(cryptoOffload(), 'never', 'another config node still asks for off');
      releaseA();
      assert.equal(cryptoOffload(), 'never', 'releasing twice does not count as another node');
      releaseB();
      assert.equal(cryptoOffload(), earlier);
      assert.equal(cryptoWorkersInEffect(), 'on');
    }
  });

  it('keeps an environment that already said "never" (PQC_IIOT_CRYPTO_WORKERS=0) at never', function () {
    setCryptoOffload('never');
    const release = holdCryptoWorkersOff();
    release();
    assert.equal(cryptoOffload(), 'never');
  });
});
