/**
 * The PKCS#11 SecurityProvider against a real SoftHSM2 token created in a temporary directory:
 * strict-mode publish → subscribe with a software peer, nothing usable on disk, sealing in the
 * token, monotonic counters and rollback of restored state, and clear, secret-free errors for a
 * missing module, a missing token, a wrong PIN, a missing key and a token removed while in use.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import { SecureSession, SoftwareProvider, cryptoBackend, identityToJson, parseIdentityJson, type IdentityBundle } from '../../lib';
import {
  Pkcs11ProviderError, openPkcs11Provider, parsePkcs11IdentityJson, pkcs11IdentityToJson, storeIdentityInToken,
  type Pkcs11ErrorCode, type Pkcs11Identity, type Pkcs11Provider,
} from '../../lib/io/pkcs11-provider';
import { publicBundleOf } from '../../lib/io/pkcs11/identity-file';
import { STATE_FILES, StateStore, restoreInto } from '../../lib/io/state-store';
import { loadedModuleCount } from '../../lib/io/pkcs11/token';
import { T0, assertReason, device, introduce, keysFor, session, testCa } from '../lib/fixtures';
import { SoftHsm, containsSecret, softHsmModule } from './softhsm';

const PIN = '739155';
const WRONG_PIN = '739156';
const TOKEN = 'pqc-test';
const SPARE = 'pqc-spare';
const TOPIC = 'plant/line1/temp';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Runs `fn`, expects a Pkcs11ProviderError with `code`, and checks its message holds no PIN. */
async function rejectsWith(fn: () => unknown, code: Pkcs11ErrorCode, message?: RegExp): Promise<Pkcs11ProviderError> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof Pkcs11ProviderError, `expected Pkcs11ProviderError(${code}), got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  for (const secret of [PIN, WRONG_PIN]) {
    assert.ok(!caught.message.includes(secret) && !String(caught.stack).includes(secret), 'the PIN appears in an error');
  }
  return caught;
}

describe('PKCS#11 provider (SoftHSM2)', function () {
  this.timeout(60_000);
  const module = softHsmModule();
  let hsm: SoftHsm;
  let bundle: IdentityBundle;
  let identity: Pkcs11Identity;
  const open: Pkcs11Provider[] = [];
  const provider = (id = identity, opts: { keyLabel?: string } = {}): Pkcs11Provider => {
    const p = openPkcs11Provider(id, { pin: PIN, ...opts });
    open.push(p);
    return p;
  };

  before(function () {
    // A missing token library is a broken install (.ci/run installs softhsm2), not a reason to skip.
    if (!module) throw new Error('SoftHSM2 is not installed: apt-get install softhsm2 (or set SOFTHSM2_MODULE)');
    hsm = new SoftHsm(module);
    hsm.initToken(TOKEN, PIN);
    hsm.initToken(SPARE, PIN);
    // A certified software identity, moved into the token: its secret keys are known to the test,
    // so the disk can be searched for them.
    bundle = device({ id: 'tok-dev' });
    identity = storeIdentityInToken(bundle, { module: module!, token: TOKEN, pin: PIN }).identity;
  });

  afterEach(() => {
    for (const p of open.splice(0)) p.close();
    assert.equal(loadedModuleCount(), 0, 'a test left the PKCS#11 module loaded');
  });

  after(() => hsm?.cleanup());

  it('publishes and subscribes in strict mode with a software peer (topic and direct modes)', async () => {
    const p = provider();
    assert.equal(p.nonExportable, true);
    assert.equal(p.rollbackResistant, true);
    assert.deepEqual(p.pqMechanisms, { mlKem: false, mlDsa: false }, 'SoftHSM 2.6 offers no post-quantum mechanism');
    assert.deepEqual(p.tokenDescription, { manufacturer: 'SoftHSM project', model: 'SoftHSM v2', hardwareSlot: false });
    const tok = new SecureSession({ provider: p, caPublicKey: testCa().publicKey, strict: true });
    const soft = session(device({ id: 'soft-peer' }));
    await introduce(tok, soft);
    await introduce(soft, tok);

    // Token device publishes (signs in memory after unwrapping), software device subscribes.
    const sealed = await tok.sealTopic(TOPIC, enc('21.5 C'), T0);
    assert.ok(sealed.keyMessage);
    assert.ok((await soft.handleKeyMessage(sealed.keyMessage.topic, sealed.keyMessage.payload, T0)).ok);
    const got = await soft.open(TOPIC, sealed.envelope, T0);
    assert.ok(got.ok && new TextDecoder().decode(got.value.data) === '21.5 C' && got.value.sender === 'tok-dev');

    // Software device sends to the token device (decapsulation with the token identity).
    const direct = await soft.sealDirect(TOPIC, enc('setpoint 20'), 'tok-dev', T0);
    const opened = await tok.open(TOPIC, direct, T0);
    assert.ok(opened.ok && new TextDecoder().decode(opened.value.data) === 'setpoint 20');
  });

  it('leaves no usable private key on disk: identity file, credentials and token files', async () => {
    const text = pkcs11IdentityToJson(identity);
    const o = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(o).sort(), [
      'certificate', 'deviceId', 'format', 'kemAlgorithm', 'keyEpoch', 'keyId', 'kemPublicKey', 'pkcs11', 'sigAlgorithm', 'sigPublicKey',
    ].sort());
    assert.throws(() => parseIdentityJson(text), /format/, 'the software parser does not take it for a bundle');
    // What is on disk cannot sign: the public bundle has no secret keys to sign with.
    await assert.rejects(async () => new SoftwareProvider(publicBundleOf(identity)).sign(enc('x')));
    // Neither the identity file nor any SoftHSM file holds the secret keys, raw, hex or base64
    // (SoftHSM encrypts private objects, and the keys are wrapped by the AES key before that).
    fs.writeFileSync(path.join(hsm.dir, 'identity.json'), text);
    const files = hsm.files();
    const pks = [bundle.kemPublicKey, bundle.sigPublicKey];
    assert.ok(containsSecret(Buffer.from(identityToJson(bundle)), bundle.kemSecretKey, pks), 'the search finds keys in a software file');
    assert.ok(files.some((f) => f.endsWith('.object')), 'token objects were searched');
    for (const f of files) {
      const bytes = fs.readFileSync(f);
      assert.ok(!containsSecret(bytes, bundle.kemSecretKey, pks) && !containsSecret(bytes, bundle.sigSecretKey, pks), `a secret key in ${path.basename(f)}`);
    }
    // The AES key is sensitive and non-extractable (checked at open), so it cannot be read out to
    // decrypt the wrapped keys elsewhere; opening needs the token and its PIN.
    await rejectsWith(() => openPkcs11Provider(identity, { pin: WRONG_PIN }), 'pin-incorrect', /refused the PIN/);
    const p = provider();
    assert.equal(JSON.stringify(p).includes(Buffer.from(bundle.sigSecretKey.subarray(0, 24)).toString('base64')), false);
    assert.match(inspect(p), /^Pkcs11Provider\(tok-dev, epoch 1, token "pqc-test"\)$/);
  });

  it('seals in the token: bound to label and identity, tamper-evident', async () => {
    const p = provider();
    const data = enc('{"windows":{},"timeFloor":1}');
    const sealed = await p.seal(data, 'state');
    assert.ok(!Buffer.from(sealed).includes(Buffer.from(data)));
    assert.deepEqual(await p.unseal(sealed, 'state'), data);
    assert.equal(await p.unseal(sealed, 'audit'), undefined, 'another label');
    for (const i of [0, 11, 12, sealed.length - 1]) {
      const t = Uint8Array.from(sealed);
      t[i] ^= 1;
      assert.equal(await p.unseal(t, 'state'), undefined, `flip at ${i}`);
    }
    assert.equal(await p.unseal(sealed.subarray(0, 20), 'state'), undefined, 'truncated');
    assert.deepEqual(await p.unseal(sealed, 'state'), data, 'the session survives failed unseals');
    // Another identity in the same token has its own key.
    const other = storeIdentityInToken(keysFor({ id: 'tok-other' }), { module: module!, token: TOKEN, pin: PIN }).identity;
    assert.equal(await provider(other).unseal(sealed, 'state'), undefined, 'another identity');
  });

  it('counters: start at 0, advance, refuse to go lower, persist across sessions', async () => {
    const p = provider();
    assert.equal(await p.counters.read('gen'), 0n);
    await p.counters.advance('gen', 5n);
    await p.counters.advance('gen', 5n);
    assert.equal(await p.counters.read('gen'), 5n);
    await rejectsWith(() => p.counters.advance('gen', 4n), 'counter-rollback', /at 5; refusing to lower it to 4/);
    assert.equal(await p.counters.read('other'), 0n, 'counters are separate');
    await p.counters.advance('big', (1n << 64n) - 1n);
    await assert.rejects(() => p.counters.advance('big', 1n << 64n), RangeError);
    await assert.rejects(() => p.counters.read('bad name/..'), RangeError);
    p.close();
    const again = provider();
    assert.equal(await again.counters.read('gen'), 5n, 'kept in the token');
    assert.equal(await again.counters.read('big'), (1n << 64n) - 1n);
  });

  it('state store on token counters: the whole state folder put back from an older copy is refused (state-rollback)', async () => {
    const dir = path.join(hsm.dir, 'state');
    const sender = session(device({ id: 'soft-peer' }));
    const start = async (): Promise<{ s: SecureSession; store: StateStore }> => {
      const p = provider();
      const s = new SecureSession({ provider: p, caPublicKey: testCa().publicKey, strict: true });
      const store = await StateStore.open({ dir, provider: p });
      const r = await restoreInto(store, s, T0);
      assert.ok(r.ok && r.source === 'hardware', r.ok ? r.source : r.message);
      return { s, store };
    };
    const first = await start();
    await introduce(first.s, sender);
    await introduce(sender, first.s);
    const envA = await sender.sealDirect(TOPIC, enc('a'), 'tok-dev', T0);
    assert.ok((await first.s.open(TOPIC, envA, T0)).ok);
    await first.store.flush();
    assert.ok(!fs.existsSync(path.join(dir, STATE_FILES.marker)), 'no marker file: the counters are in the token');
    const snapshot = new Map(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]));
    assert.ok((await first.s.open(TOPIC, await sender.sealDirect(TOPIC, enc('b'), 'tok-dev', T0), T0)).ok);
    await first.store.flush();
    const current = new Map(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]));
    for (const [f, bytes] of current) {
      const pks = [bundle.kemPublicKey, bundle.sigPublicKey];
      assert.ok(!containsSecret(bytes, bundle.kemSecretKey, pks) && !containsSecret(bytes, bundle.sigSecretKey, pks), `a secret key in ${f}`);
    }
    await first.store.close();
    open.splice(0).forEach((p) => p.close());

    // Backup restore or disk image of an earlier day: every state file from the older copy.
    const putBack = (files: Map<string, Buffer>): void => {
      for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f));
      for (const [f, b] of files) fs.writeFileSync(path.join(dir, f), b);
    };
    putBack(snapshot);
    const p = provider();
    const store = await StateStore.open({ dir, provider: p });
    const load = await store.load();
    await store.close();
    assert.ok(!load.ok && load.problem === 'state-rollback', JSON.stringify(load));
    assert.match(load.message, /hardware counter says 2/);

    // The latest state is accepted, and the message it already took is not accepted again.
    putBack(current);
    open.splice(0).forEach((q) => q.close());
    const again = await start();
    assertReason(await again.s.open(TOPIC, envA, T0), 'duplicate');
    await again.store.close();
  });

  it('missing module, not a module, missing token, wrong PIN, missing key: clear errors, nothing left open', async () => {
    await rejectsWith(() => openPkcs11Provider(identity, { pin: PIN, module: '/nonexistent/libpkcs11.so' }), 'module-not-found', /\/nonexistent\/libpkcs11\.so not found/);
    // A shared library without C_GetFunctionList: the binding's own addon.
    const notAModule = require.resolve('pkcs11js/build/Release/pkcs11.node');
    await rejectsWith(() => openPkcs11Provider(identity, { pin: PIN, module: notAModule }), 'module-invalid', /not a PKCS#11 module/);
    await rejectsWith(() => openPkcs11Provider(identity, { pin: PIN, token: 'no-such-token' }), 'token-not-found', /no token labelled "no-such-token".*"pqc-test"/);
    await rejectsWith(() => openPkcs11Provider(identity, { pin: WRONG_PIN }), 'pin-incorrect');
    await rejectsWith(() => openPkcs11Provider(identity, { pin: '' }), 'pin-missing');
    await rejectsWith(() => openPkcs11Provider(identity, { pin: PIN, token: SPARE }), 'key-missing', /holds no key labelled "pqc-iiot\/tok-dev"/);
    const other = storeIdentityInToken(keysFor({ id: 'tok-third' }), { module: module!, token: TOKEN, pin: PIN }).identity;
    await rejectsWith(() => openPkcs11Provider(identity, { pin: PIN, keyLabel: other.pkcs11.keyLabel }), 'key-mismatch', /belongs to another identity/);
    await rejectsWith(() => storeIdentityInToken(bundle, { module: module!, token: TOKEN, pin: PIN }), 'key-exists');
    // While another provider of this process is logged in, the token would accept any session:
    // the PIN is still checked.
    provider();
    await rejectsWith(() => openPkcs11Provider(identity, { pin: WRONG_PIN }), 'pin-incorrect');
    open.splice(0).forEach((p) => p.close());
    assert.equal(loadedModuleCount(), 0);
  });

  it('a token removed or re-initialised while in use: every operation fails clearly, keys are wiped', async () => {
    const p = provider();
    const tok = new SecureSession({ provider: p, caPublicKey: testCa().publicKey, strict: true });
    const soft = session(device({ id: 'soft-peer' }));
    await introduce(tok, soft);
    await introduce(soft, tok);
    const direct = await soft.sealDirect(TOPIC, enc('after removal'), 'tok-dev', T0);
    const tokenDir = hsm.tokenDirOf(TOKEN);
    const aside = `${tokenDir}.removed`;
    fs.renameSync(tokenDir, aside);
    try {
      await rejectsWith(() => p.sign(enc('x')), 'token-removed', /"pqc-test" was removed or re-initialised while in use/);
      const { capsule } = cryptoBackend().encapsulate(identity.kemAlgorithm, identity.kemPublicKey);
      await rejectsWith(() => p.decapsulate(capsule), 'token-removed');
      await rejectsWith(() => p.seal(enc('x'), 'state'), 'token-removed');
      await rejectsWith(() => p.counters.read('gen'), 'token-removed');
      // Through a session: sending and receiving both fail with the provider's own error, not
      // with a verdict about the message (the endpoint reports it as provider-failed).
      await rejectsWith(() => tok.sealDirect(TOPIC, enc('x'), 'soft-peer', T0), 'token-removed');
      await rejectsWith(() => tok.open(TOPIC, direct, T0), 'token-removed');
      const secrets = p as unknown as { kemSecretKey: Uint8Array; sigSecretKey: Uint8Array };
      assert.ok(secrets.kemSecretKey.every((b) => b === 0) && secrets.sigSecretKey.every((b) => b === 0), 'wiped');
    } finally {
      fs.renameSync(aside, tokenDir);
    }
    p.close();
    p.close();
    await rejectsWith(() => p.sign(enc('x')), 'closed');

    // Re-initialising the spare token under a running provider (its objects vanish).
    const spareId = storeIdentityInToken(keysFor({ id: 'tok-spare' }), { module: module!, token: SPARE, pin: PIN }).identity;
    const q = provider(spareId);
    assert.ok((await q.sign(enc('before'))).length > 0);
    hsm.reinitToken(SPARE, PIN);
    await rejectsWith(() => q.sign(enc('after')), 'token-removed');
    await rejectsWith(() => q.unseal(new Uint8Array(40), 'state'), 'token-removed');
  });

  it('the identity file round-trips and refuses secret fields or a broken reference', () => {
    const text = pkcs11IdentityToJson(identity);
    assert.equal(pkcs11IdentityToJson(parsePkcs11IdentityJson(text)), text);
    const o = JSON.parse(text) as Record<string, unknown>;
    const bad = (patch: Record<string, unknown>, message: RegExp): void =>
      assert.throws(() => parsePkcs11IdentityJson(JSON.stringify({ ...o, ...patch })), message);
    bad({ sigSecretKey: Buffer.from(bundle.sigSecretKey).toString('base64') }, /must not hold "sigSecretKey"/);
    bad({ pkcs11: { ...(o.pkcs11 as object), token: 'x'.repeat(33) } }, /pkcs11.token/);
    bad({ pkcs11: { ...(o.pkcs11 as object), keyStorage: 'plain' } }, /keyStorage/);
    bad({ keyId: '00'.repeat(16) }, /keyId/);
    bad({ certificate: Buffer.from(device({ id: 'soft-peer' }).certificate!).toString('base64') }, /another device/);
  });
});
