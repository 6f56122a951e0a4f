/** The software SecurityProvider: signing, decapsulation, sealing of local state, wiping. */
import assert from 'node:assert/strict';
import { SoftwareProvider, type SecurityProvider } from '../../../lib/session/provider';
import { cryptoBackend } from '../../../lib/crypto/backend';
import { keysFor } from '../fixtures';

describe('session/provider: SoftwareProvider', () => {
  const bundle = keysFor({ id: 'prov-a' });
  const other = keysFor({ id: 'prov-b' });

  it('seals and unseals under its own keys only, bound to the label', async () => {
    const p = new SoftwareProvider(bundle);
    const data = new TextEncoder().encode('{"windows":{}}');
    const sealed = await p.seal(data, 'state');
    assert.ok(!Buffer.from(sealed).includes(Buffer.from(data)), 'sealed state is not readable');
    assert.deepEqual(await p.unseal(sealed, 'state'), data);
    assert.equal(await p.unseal(sealed, 'audit'), undefined, 'another label');
    assert.equal(await new SoftwareProvider(other).unseal(sealed, 'state'), undefined, 'another identity');
    for (let i = 0; i < sealed.length; i += 5) {
      const t = Uint8Array.from(sealed);
      t[i] ^= 1;
      assert.equal(await p.unseal(t, 'state'), undefined, `flip at ${i}`);
    }
    assert.equal(await p.unseal(sealed.subarray(0, 20), 'state'), undefined, 'truncated');
    assert.notDeepEqual(await p.seal(data, 'state'), sealed, 'fresh nonce each time');
  });

  it('signs and decapsulates with the bundle keys, and close() wipes its own copies only', async () => {
    const p = new SoftwareProvider(bundle);
    const msg = new Uint8Array(32).fill(9);
    assert.ok(cryptoBackend().verify(bundle.sigAlgorithm, await p.sign(msg), msg, bundle.sigPublicKey));
    const { capsule, sharedSecret } = cryptoBackend().encapsulate(bundle.kemAlgorithm, bundle.kemPublicKey);
    assert.deepEqual(await p.decapsulate(capsule), sharedSecret);
    p.close();
    assert.ok(bundle.sigSecretKey.some((b) => b !== 0), 'the caller\'s bundle is untouched');
    assert.equal((p as SecurityProvider).counters, undefined, 'software has no rollback-resistant counters');
    assert.equal(JSON.stringify(p).includes(Buffer.from(bundle.sigSecretKey.subarray(0, 16)).toString('base64')), false);
  });
});
