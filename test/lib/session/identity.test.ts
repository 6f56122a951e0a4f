/**
 * Identities, CA key pairs and their JSON files (lib/session/identity.ts) and the software
 * SecurityProvider (lib/session/provider.ts). These parse local input: errors are exceptions,
 * and no error message, JSON or inspect output may contain a secret key.
 */
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import {
  CA_FORMAT, DEFAULT_KEM, DEFAULT_SIG, IDENTITY_FORMAT, SoftwareProvider, caKeyPairToJson, cryptoBackend,
  createIdentity, deriveKeyId, fingerprintOf, identityPublicInfo, identityToJson, issueCertificate, parseCaKeyPairJson,
  parseIdentityJson, type CaKeyPair, type IdentityBundle,
} from '../../../lib';
import { DAY, T0, device, falconCa, keysFor, otherCa, prng, randomBytes, testCa } from '../fixtures';

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

/**
 * Text that must never appear in an error or a public view: the whole base64 of each secret key,
 * and 24-character slices of it taken only where the key holds secret bytes (ML-KEM secret keys
 * embed the public key, and ML-DSA secret keys start with the public seed rho), plus hex.
 */
type SecretKind = 'ML-KEM' | 'ML-DSA' | 'Falcon';
function secretFragments(...keys: [Uint8Array, SecretKind][]): string[] {
  const out: string[] = [];
  for (const [sk, kind] of keys) {
    const text = b64(sk);
    out.push(text);
    // Byte ranges that are secret: ML-KEM dk_PKE (first 384·k bytes), ML-DSA K and s1/s2/t0,
    // Falcon everything after its header byte.
    const ranges: [number, number][] =
      kind === 'ML-KEM' ? [[0, sk.length === 2400 ? 1152 : 1536]] : kind === 'ML-DSA' ? [[32, 64], [128, sk.length]] : [[1, sk.length]];
    for (const [start, end] of ranges) {
      out.push(Buffer.from(sk.subarray(start, Math.min(end, start + 24))).toString('hex'));
      for (let c = Math.ceil((start * 4) / 3) + 4; c + 24 <= Math.floor((end * 4) / 3); c += 97) out.push(text.slice(c, c + 24));
    }
  }
  return out;
}

function assertThrowsWithoutSecrets(fn: () => unknown, secrets: string[], pattern: RegExp, what: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof Error, `${what}: expected an Error to be thrown`);
  assert.match(caught.message, pattern, what);
  const all = `${caught.message}\n${caught.stack ?? ''}\n${inspect(caught)}`;
  for (const s of secrets) assert.ok(!all.includes(s), `${what}: error exposes secret material "${s.slice(0, 12)}…"`);
}

describe('session/identity', () => {
  let alice: IdentityBundle;
  let json: Record<string, unknown>;
  let secrets: string[];

  before(() => {
    alice = device({ id: 'alice' });
    json = JSON.parse(identityToJson(alice));
    secrets = secretFragments([alice.kemSecretKey, 'ML-KEM'], [alice.sigSecretKey, 'ML-DSA']);
  });

  describe('createIdentity and issueCertificate', () => {
    it('derives the key id from the public keys and defaults to ML-KEM-768 with Falcon-512', () => {
      assert.deepEqual(alice.keyId, deriveKeyId(alice.kemAlgorithm, alice.kemPublicKey, alice.sigAlgorithm, alice.sigPublicKey));
      assert.equal(DEFAULT_KEM, 'ML-KEM-768');
      assert.equal(DEFAULT_SIG, 'Falcon-512');
      const f = keysFor({ id: 'falcon-dev', sig: 'Falcon-512' });
      assert.equal(f.sigPublicKey.length, 897);
      assert.equal(f.kemPublicKey.length, 1184);
      assert.ok(Object.isFrozen(alice));
    });

    it('is deterministic from seeds (test vectors) and random without them', () => {
      const seeds = { kem: new Uint8Array(64).fill(1), sig: new Uint8Array(32).fill(2) };
      const x = createIdentity({ deviceId: 'seeded', sigAlgorithm: 'ML-DSA-44', seeds });
      const y = createIdentity({ deviceId: 'seeded', sigAlgorithm: 'ML-DSA-44', seeds });
      assert.deepEqual(x.keyId, y.keyId);
      assert.notDeepEqual(createIdentity({ deviceId: 'seeded', sigAlgorithm: 'ML-DSA-44' }).keyId, x.keyId);
    });

    it('I0 refuses invalid device ids, unknown algorithms and epochs outside u32', () => {
      for (const id of ['', 'x'.repeat(129), 'a b', 'dévice', 'a/b']) {
        assert.throws(() => createIdentity({ deviceId: id, sigAlgorithm: 'ML-DSA-44' }), /device id/, JSON.stringify(id));
      }
      assert.throws(() => createIdentity({ deviceId: 'a', kemAlgorithm: 'ML-KEM-512' as never }), /KEM algorithm/);
      assert.throws(() => createIdentity({ deviceId: 'a', sigAlgorithm: 'RSA' as never }), /signature algorithm/);
      for (const e of [-1, 2 ** 32, 1.5, Number.NaN]) {
        assert.throws(() => createIdentity({ deviceId: 'a', sigAlgorithm: 'ML-DSA-44', keyEpoch: e }), /key epoch/, String(e));
      }
    });

    it('issueCertificate refuses bad roles, topic lists and validity windows', () => {
      const k = keysFor({ id: 'alice' });
      const base = { roles: 'both' as const, topics: ['a/#'], notBefore: T0, notAfter: T0 + DAY };
      assert.throws(() => issueCertificate(testCa(), k, { ...base, roles: 'admin' as never }), /roles/);
      assert.throws(() => issueCertificate(testCa(), k, { ...base, topics: [] }), /topic filters/);
      assert.throws(() => issueCertificate(testCa(), k, { ...base, topics: Array(256).fill('a') }), /topic filters/);
      assert.throws(() => issueCertificate(testCa(), k, { ...base, topics: 'a/#' as never }), /topic filters/);
      for (const t of ['a/#/b', 'a+', '']) assert.throws(() => issueCertificate(testCa(), k, { ...base, topics: [t] }), /topic filter/, t);
      assert.throws(() => issueCertificate(testCa(), k, { ...base, notAfter: T0 - 1 }), /validity/);
      assert.throws(() => issueCertificate(testCa(), k, { ...base, notBefore: -1 }), /validity/);
      assert.throws(() => issueCertificate(testCa(), k, { ...base, notAfter: 1.5 }), /validity/);
      assert.throws(() => issueCertificate(testCa(), k, { ...base, notAfter: 2 ** 60 }), /validity/);
    });
  });

  describe('identity JSON', () => {
    it('round-trips with and without certificate', () => {
      const back = parseIdentityJson(identityToJson(alice));
      assert.deepEqual(back, alice);
      const bare = keysFor({ id: 'alice' });
      const back2 = parseIdentityJson(identityToJson(bare));
      assert.equal(back2.certificate, undefined);
      assert.deepEqual(back2.sigSecretKey, bare.sigSecretKey);
      assert.equal(JSON.parse(identityToJson(bare)).certificate, null);
    });

    it('accepts a bundle without the optional keyId', () => {
      const { keyId: _k, ...rest } = json;
      assert.deepEqual(parseIdentityJson(JSON.stringify(rest)).keyId, alice.keyId);
    });

    const mutate = (patch: Record<string, unknown>, drop: string[] = []): string => {
      const o: Record<string, unknown> = { ...json, ...patch };
      for (const d of drop) delete o[d];
      return JSON.stringify(o);
    };

    it('every bad bundle throws an Error whose message, stack and inspect output hold no secret key', () => {
      const other = keysFor({ id: 'bob' });
      const secretKem = json.kemSecretKey as string;
      const secretSig = json.sigSecretKey as string;
      const cases: [string, () => string, RegExp][] = [
        ['empty', () => '', /empty/],
        ['white space', () => ' \n ', /empty/],
        ['JSON cut in the middle of a secret', () => identityToJson(alice).slice(0, identityToJson(alice).indexOf(secretSig) + 500), /not valid JSON/],
        ['a secret alone, not JSON', () => secretSig, /not valid JSON/],
        ['array', () => JSON.stringify([json]), /JSON object/],
        ['null', () => 'null', /JSON object/],
        ['string', () => JSON.stringify(secretKem), /JSON object/],
        ['wrong format', () => mutate({ format: 'pqc-iiot-identity/2' }), /format/],
        ['missing device id', () => mutate({}, ['deviceId']), /deviceId/],
        ['invalid device id', () => mutate({ deviceId: 'a b' }), /device id/],
        ['device id of 129', () => mutate({ deviceId: 'x'.repeat(129) }), /device id/],
        ['epoch negative', () => mutate({ keyEpoch: -1 }), /keyEpoch/],
        ['epoch as text', () => mutate({ keyEpoch: '1' }), /keyEpoch/],
        ['missing epoch', () => mutate({}, ['keyEpoch']), /keyEpoch/],
        ['unknown KEM', () => mutate({ kemAlgorithm: 'ML-KEM-512' }), /KEM algorithm/],
        ['unknown signature algorithm', () => mutate({ sigAlgorithm: 'Ed25519' }), /signature algorithm/],
        ['algorithm not matching key lengths', () => mutate({ sigAlgorithm: 'ML-DSA-65' }), /sigPublicKey/],
        ['KEM secret not base64', () => mutate({ kemSecretKey: `${secretKem.slice(0, 100)}!${secretKem.slice(101)}` }), /kemSecretKey.*base64/],
        ['signature secret not a string', () => mutate({ sigSecretKey: 12 }), /sigSecretKey.*base64/],
        ['KEM secret one byte short', () => mutate({ kemSecretKey: b64(alice.kemSecretKey.subarray(1)) }), /kemSecretKey.*bytes/],
        ['signature secret truncated', () => mutate({ sigSecretKey: secretSig.slice(0, 400) }), /sigSecretKey/],
        ['missing signature secret', () => mutate({}, ['sigSecretKey']), /sigSecretKey/],
        ['KEM secret of another identity', () => mutate({ kemSecretKey: b64(other.kemSecretKey) }), /KEM secret key does not match/],
        ['signature secret of another identity', () => mutate({ sigSecretKey: b64(other.sigSecretKey) }), /signature secret key does not match/],
        ['keyId not matching', () => mutate({ keyId: '00'.repeat(16) }), /keyId/],
        ['certificate not decodable', () => mutate({ certificate: b64(new Uint8Array(100)) }), /certificate does not decode/],
        ['certificate as a number', () => mutate({ certificate: 5 }), /certificate/],
        ['certificate of another device', () => mutate({ certificate: b64(device({ id: 'bob' }).certificate!) }), /another device/],
        ['certificate of another epoch', () => mutate({ certificate: b64(device({ id: 'alice', epoch: 2 }).certificate!) }), /another device/],
      ];
      for (const [what, text, pattern] of cases) {
        assertThrowsWithoutSecrets(() => parseIdentityJson(text()), secrets, pattern, what);
      }
    });

    it('a secret pasted into the wrong field (e.g. an algorithm name) is not echoed in the error', () => {
      const secretSig = json.sigSecretKey as string;
      assertThrowsWithoutSecrets(() => parseIdentityJson(mutate({ sigAlgorithm: secretSig })), secrets, /signature algorithm/, 'secret as sigAlgorithm');
      assertThrowsWithoutSecrets(() => parseIdentityJson(mutate({ kemAlgorithm: secretSig })), secrets, /KEM algorithm/, 'secret as kemAlgorithm');
    });

    it('300 seeded random corruptions of a bundle either parse to a consistent identity or throw without secrets', () => {
      const rand = prng(0x1d);
      const text = identityToJson(alice);
      let refused = 0;
      for (let i = 0; i < 300; i++) {
        let t: string;
        const pos = Math.floor(rand() * text.length);
        const kind = i % 4;
        if (kind === 0) t = text.slice(0, pos);
        else if (kind === 1) t = text.slice(0, pos) + String.fromCharCode(32 + Math.floor(rand() * 95)) + text.slice(pos + 1);
        else if (kind === 2) t = text.slice(0, pos) + text.slice(pos + 1 + Math.floor(rand() * 40));
        else t = Buffer.from(randomBytes(rand, Math.floor(rand() * 300))).toString('latin1');
        let parsed: IdentityBundle | undefined;
        try {
          parsed = parseIdentityJson(t);
        } catch (e) {
          refused++;
          assert.ok(e instanceof Error, `corruption #${i}: non-Error thrown`);
          for (const f of secrets) assert.ok(!e.message.includes(f), `corruption #${i}: "${e.message.slice(0, 80)}" holds a secret`);
          continue;
        }
        // A corruption that still parses (e.g. inside the certificate's base64 padding or a
        // white-space change) must still be the same keys.
        assert.deepEqual(parsed.keyId, alice.keyId, `corruption #${i} parsed to other keys`);
      }
      assert.ok(refused > 200, `only ${refused} of 300 refused`);
    });

    it('non-string input throws a plain error', () => {
      for (const x of [undefined, null, 42, {}]) assert.throws(() => parseIdentityJson(x as unknown as string), /identity: empty/);
    });
  });

  describe('CA key pair JSON', () => {
    let ca: CaKeyPair;
    let caJson: Record<string, unknown>;
    let caSecrets: string[];

    before(() => {
      ca = testCa();
      caJson = JSON.parse(caKeyPairToJson(ca));
      caSecrets = secretFragments([ca.secretKey, 'ML-DSA']);
    });

    it('round-trips', () => {
      const back = parseCaKeyPairJson(caKeyPairToJson(ca));
      assert.deepEqual(back.secretKey, ca.secretKey);
      assert.deepEqual(back.publicKey.keyId, ca.publicKey.keyId);
      assert.equal(caJson.format, CA_FORMAT);
    });

    it('a Falcon-512 CA round-trips too', () => {
      const f = falconCa();
      assert.deepEqual(parseCaKeyPairJson(caKeyPairToJson(f)).publicKey.keyId, f.publicKey.keyId);
    });

    it('every bad CA file throws an Error whose message holds no secret key', () => {
      const mutate = (patch: Record<string, unknown>, drop: string[] = []): string => {
        const o: Record<string, unknown> = { ...caJson, ...patch };
        for (const d of drop) delete o[d];
        return JSON.stringify(o);
      };
      const secret = caJson.secretKey as string;
      const otherPk = JSON.parse(caKeyPairToJson(otherCa())).publicKey as string;
      const cases: [string, () => string, RegExp][] = [
        ['empty', () => '', /empty/],
        ['cut JSON', () => caKeyPairToJson(ca).slice(0, caKeyPairToJson(ca).indexOf(secret) + 300), /not valid JSON/],
        ['array', () => '[]', /JSON object/],
        ['wrong format', () => mutate({ format: IDENTITY_FORMAT }), /format/],
        ['unknown algorithm', () => mutate({ sigAlgorithm: 'RSA' }), /signature algorithm/],
        ['algorithm differs from the public key', () => mutate({ sigAlgorithm: 'ML-DSA-65' }), /publicKey/],
        ['public key missing', () => mutate({}, ['publicKey']), /publicKey/],
        ['public key not text', () => mutate({ publicKey: 7 }), /publicKey/],
        ['public key garbage', () => mutate({ publicKey: 'pqcca1:AAAA' }), /publicKey/],
        ['public key without prefix', () => mutate({ publicKey: (caJson.publicKey as string).slice(7) }), /publicKey/],
        ['secret not base64', () => mutate({ secretKey: `${secret}*` }), /secretKey.*base64/],
        ['secret truncated', () => mutate({ secretKey: secret.slice(0, 1000) }), /secretKey.*bytes/],
        ['secret missing', () => mutate({}, ['secretKey']), /secretKey/],
        ['secret of another CA', () => mutate({ secretKey: b64(otherCa().secretKey) }), /does not match/],
        ['public key of another CA', () => mutate({ publicKey: otherPk }), /does not match/],
      ];
      const all = [...caSecrets, ...secretFragments([otherCa().secretKey, 'ML-DSA'])];
      for (const [what, text, pattern] of cases) assertThrowsWithoutSecrets(() => parseCaKeyPairJson(text()), all, pattern, what);
    });

    it('a secret pasted into the algorithm field is not echoed in the error', () => {
      const mutated = JSON.stringify({ ...caJson, sigAlgorithm: caJson.secretKey });
      assertThrowsWithoutSecrets(() => parseCaKeyPairJson(mutated), caSecrets, /signature algorithm/, 'secret as sigAlgorithm');
    });
  });

  describe('public views and the software provider', () => {
    it('identityPublicInfo holds public data only, with a readable fingerprint', () => {
      const info = identityPublicInfo(alice);
      const text = JSON.stringify(info);
      for (const s of secrets) assert.ok(!text.includes(s));
      assert.equal(info.keyId, Buffer.from(alice.keyId).toString('hex'));
      assert.match(info.fingerprint, /^([0-9a-f]{4}:){7}[0-9a-f]{4}$/);
      assert.equal(info.fingerprint, fingerprintOf(alice.keyId));
      assert.equal(info.hasCertificate, true);
      assert.deepEqual(info.certificate?.topics, ['plant/#']);
      assert.equal(info.certificate?.notAfter, T0 + 180 * DAY);
      assert.equal(identityPublicInfo(keysFor({ id: 'alice' })).hasCertificate, false);
    });

    it('SoftwareProvider keeps secrets out of JSON and inspect, and close() wipes them', async () => {
      const p = new SoftwareProvider(alice);
      const shown = `${JSON.stringify(p)}\n${inspect(p, { depth: 5, showHidden: true })}\n${String(p)}`;
      for (const s of secrets) assert.ok(!shown.includes(s), 'secret shown');
      const msg = new Uint8Array(32).fill(9);
      const sig = await p.sign(msg);
      assert.ok(cryptoBackend().verify('ML-DSA-44', sig, msg, alice.sigPublicKey));
      p.close();
      assert.ok(alice.sigSecretKey.some((b) => b !== 0), "close() does not wipe the caller's bundle");
      let after: Uint8Array | undefined;
      try {
        after = await p.sign(msg);
      } catch {
        after = undefined;
      }
      assert.ok(after === undefined || !cryptoBackend().verify('ML-DSA-44', after, msg, alice.sigPublicKey), 'signs after close()');
    });
  });
});
