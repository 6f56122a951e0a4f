/**
 * The importable flows in examples/: each one deploys as imported (no credentials: red
 * "no identity", nothing crashes, errors reach the flow), and, once provisioned exactly as its
 * own instructions say and pointed at an in-process aedes broker, delivers end to end. Also
 * checks that no example carries a secret, that the pack's nodes carry exactly their editor
 * defaults, and that every node type of the pack is shown by at least one example.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import helper, { type NodeModule } from 'node-red-node-test-helper';
import {
  CA_FORMAT, IDENTITY_FORMAT, caKeyPairToJson, caPublicKeyToText, createCa, createIdentity, identityToJson, issueCertificate, topicMatches,
  type CaKeyPair, type Role,
} from '../../lib';
import { startAedes, type AedesBroker } from '../helpers/aedes';
import { Inbox, NOW, errorTexts, readyConfig, waitConnected, waitForError, waitForPeer, waitForStatus, waitSubscribed } from '../nodes/node-harness';

helper.init(require.resolve('node-red'));

type FlowNode = Record<string, unknown> & { id: string; type: string; wires?: string[][] };

function packageRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'examples'))) return dir;
    if (path.dirname(dir) === dir) throw new Error('package root not found');
  }
}

const ROOT = packageRoot();
const EXAMPLES_DIR = path.join(ROOT, 'examples');
const PACKAGE = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } };
const PACK_TYPES = Object.keys(PACKAGE['node-red'].nodes);
const load = createRequire(__filename);

/** Core node modules the examples may use, as node-red ships them. */
const CORE_MODULES: Record<string, string> = {
  inject: '@node-red/nodes/core/common/20-inject.js',
  debug: '@node-red/nodes/core/common/21-debug.js',
  comment: '@node-red/nodes/core/common/90-comment.js',
  function: '@node-red/nodes/core/function/10-function.js',
  change: '@node-red/nodes/core/function/15-change.js',
  switch: '@node-red/nodes/core/function/10-switch.js',
  'mqtt in': '@node-red/nodes/core/network/10-mqtt.js',
  'mqtt out': '@node-red/nodes/core/network/10-mqtt.js',
  'mqtt-broker': '@node-red/nodes/core/network/10-mqtt.js',
};
/** The test helper loads these itself whenever a flow contains them. */
const HELPER_PRELOADED = new Set(['catch', 'status', 'complete']);
/** Properties the editor adds to every node, beside its `defaults`. */
const LAYOUT_KEYS = new Set(['id', 'type', 'z', 'g', 'x', 'y', 'w', 'h', 'wires', 'l', 'd']);

const exampleFiles = fs.readdirSync(EXAMPLES_DIR).filter((f) => f.endsWith('.json')).sort();

function readExample(file: string): FlowNode[] {
  return JSON.parse(fs.readFileSync(path.join(EXAMPLES_DIR, file), 'utf8')) as FlowNode[];
}

/** The node modules a flow needs: the pack's from package.json, core ones from node-red. */
function modulesFor(flow: FlowNode[]): NodeModule[] {
  const modules = new Set<NodeModule>();
  for (const type of new Set(flow.map((n) => n.type))) {
    if (type === 'tab' || HELPER_PRELOADED.has(type)) continue;
    const file = PACKAGE['node-red'].nodes[type];
    const id = file ? path.join(ROOT, file) : CORE_MODULES[type];
    if (!id) throw new Error(`no module known for node type "${type}"`);
    modules.add(load(id) as NodeModule);
  }
  return [...modules];
}

/** Top-level keys of `defaults: {…}` in a node's editor file (registerType call of `type`). */
function editorDefaults(type: string): string[] {
  const html = fs.readFileSync(path.join(ROOT, 'nodes', `${type}.html`), 'utf8');
  const at = html.search(new RegExp(`registerType\\(\\s*['"]${type}['"]`));
  assert.ok(at >= 0, `nodes/${type}.html registers ${type}`);
  const open = html.indexOf('{', html.indexOf('defaults:', at));
  const keys: string[] = [];
  let depth = 0;
  let expectKey = true;
  for (let i = open; i < html.length; i++) {
    const c = html[i];
    if (c === '"' || c === "'") {
      i = html.indexOf(c, i + 1); // no escaped quotes in these literals
    } else if ('{[('.includes(c)) {
      depth++;
      if (depth === 1) expectKey = true;
    } else if ('}])'.includes(c)) {
      depth--;
      if (depth === 0) break;
    } else if (depth === 1 && c === ',') {
      expectKey = true;
    } else if (depth === 1 && expectKey && /[A-Za-z_$]/.test(c)) {
      const m = /^[A-Za-z_$][\w$]*(?=\s*:)/.exec(html.slice(i));
      if (m) keys.push(m[0]);
      expectKey = false;
    }
  }
  return keys;
}

/** What the example's own instructions tell the importer to run: device id → roles, filters. */
function provisioningOf(flow: FlowNode[]): Map<string, { roles: Role; topics: string[] }> {
  const tab = flow.find((n) => n.type === 'tab');
  const info = String(tab?.info ?? '');
  const fileToId = new Map([...info.matchAll(/pqc-iiot identity new --id (\S+) --out (\S+)/g)].map((m) => [m[2], m[1]]));
  const out = new Map<string, { roles: Role; topics: string[] }>();
  for (const m of info.matchAll(/pqc-iiot ca issue --dir \S+ --identity (\S+) --roles (pub|sub|both) --topics "([^"]+)"/g)) {
    const deviceId = fileToId.get(m[1]);
    assert.ok(deviceId, `"ca issue --identity ${m[1]}" names a file made by "identity new"`);
    out.set(deviceId, { roles: m[2] as Role, topics: m[3].split(',').map((t) => t.trim()) });
  }
  return out;
}

function stringValues(value: unknown, at = ''): Array<{ at: string; text: string }> {
  if (typeof value === 'string') return [{ at, text: value }];
  if (Array.isArray(value)) return value.flatMap((v, i) => stringValues(v, `${at}[${i}]`));
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => stringValues(v, at ? `${at}.${k}` : k));
  return [];
}

/** The nodes sending into `id`, through any chain of nodes (inject → function → out). */
function upstream(flow: FlowNode[], id: string, seen = new Set<string>()): FlowNode[] {
  const direct = flow.filter((n) => !seen.has(n.id) && (n.wires ?? []).some((port) => port.includes(id)));
  for (const n of direct) seen.add(n.id);
  return [...direct, ...direct.flatMap((n) => upstream(flow, n.id, seen))];
}

describe('examples/*.json', function () {
  this.timeout(60_000);

  it('exist, parse, and are consistent flows (unique ids, tabs, wires and config references resolve)', function () {
    assert.ok(exampleFiles.length >= 2, `examples found: ${exampleFiles.join(', ')}`);
    for (const file of exampleFiles) {
      const flow = readExample(file);
      assert.ok(Array.isArray(flow) && flow.length > 0, file);
      const ids = new Set(flow.map((n) => n.id));
      assert.equal(ids.size, flow.length, `${file}: duplicate node ids`);
      const tabs = new Set(flow.filter((n) => n.type === 'tab').map((n) => n.id));
      assert.equal(tabs.size, 1, `${file}: one tab`);
      for (const n of flow) {
        if (n.z !== undefined) assert.ok(tabs.has(String(n.z)), `${file}: ${n.id} is on a tab of the file`);
        for (const target of (n.wires ?? []).flat()) assert.ok(ids.has(target), `${file}: ${n.id} is wired to missing ${target}`);
        if (typeof n.pqcConfig === 'string') assert.equal(flow.find((c) => c.id === n.pqcConfig)?.type, 'pqc-config', `${file}: ${n.id}'s pqcConfig`);
        if (n.type === 'catch' && Array.isArray(n.scope)) for (const s of n.scope) assert.ok(ids.has(String(s)), `${file}: catch scope ${s}`);
      }
    }
  });

  it('every node type of the pack appears in at least one example', function () {
    const used = new Set(exampleFiles.flatMap((f) => readExample(f).map((n) => n.type)));
    const missing = PACK_TYPES.filter((t) => !used.has(t));
    assert.deepEqual(missing, [], `node types of package.json "node-red.nodes" without an example: ${missing.join(', ')}`);
  });

  it('carry no secrets: no credentials, no identity bundle or private key, no pinned public keys', function () {
    for (const file of exampleFiles) {
      const text = fs.readFileSync(path.join(EXAMPLES_DIR, file), 'utf8');
      for (const marker of [IDENTITY_FORMAT, CA_FORMAT, 'SecretKey', 'secretKey', 'privateKey', 'PRIVATE KEY']) {
        assert.ok(!text.includes(marker), `${file} contains "${marker}"`);
      }
      // The instructions may name the CA key's prefix ("pqcca1:…"), never a key.
      assert.ok(!/pqcca1:[A-Za-z0-9+/]{8}/.test(text), `${file} contains a CA public key`);
      for (const node of readExample(file)) {
        assert.equal(node.credentials, undefined, `${file}: ${node.id} carries credentials`);
        for (const key of ['identity', 'password', 'user']) assert.equal(node[key], undefined, `${file}: ${node.id} has "${key}"`);
        for (const { at, text: value } of stringValues(node)) {
          assert.ok(!/[A-Za-z0-9+/=]{100,}/.test(value), `${file}: ${node.id}.${at} holds a long base64/hex blob`);
        }
        if (node.type === 'pqc-config') {
          for (const key of ['caPublicKey', 'kemPublicKey', 'sigPublicKey', 'fingerprint', 'algorithms']) {
            assert.equal(node[key], '', `${file}: ${node.id}.${key} must be empty (filled in by the importer's own provisioning)`);
          }
          assert.equal(node.hasCertificate, 'false', `${file}: ${node.id}.hasCertificate`);
        }
      }
    }
  });

  it("the pack's nodes carry exactly the properties of their editor defaults", function () {
    const used = new Set(exampleFiles.flatMap((f) => readExample(f).map((n) => n.type)));
    for (const type of PACK_TYPES.filter((t) => used.has(t))) {
      const defaults = editorDefaults(type).sort();
      assert.ok(defaults.length > 0, `defaults of ${type} parsed`);
      for (const file of exampleFiles) {
        for (const node of readExample(file).filter((n) => n.type === type)) {
          const keys = Object.keys(node).filter((k) => !LAYOUT_KEYS.has(k)).sort();
          assert.deepEqual(keys, defaults, `${file}: ${node.id} (${type})`);
        }
      }
    }
  });

  for (const file of exampleFiles) {
    describe(file, function () {
      let aedes: AedesBroker | undefined;

      beforeEach(async function () {
        await helper.startServer();
      });

      afterEach(async function () {
        await helper.unload();
        await helper.stopServer();
        await aedes?.close();
        aedes = undefined;
      });

      it('deploys as imported: every node created, red "no identity", inputs fail into the flow, nothing crashes', async function () {
        const flow = readExample(file);
        await helper.load(modulesFor(flow), flow);
        for (const n of flow.filter((x) => x.type !== 'tab')) assert.ok(helper.getNode(n.id), `${n.id} (${n.type}) was created`);
        for (const n of flow.filter((x) => PACK_TYPES.includes(x.type) && x.type !== 'pqc-config')) {
          const s = await waitForStatus(helper.getNode(n.id), (st) => st.fill === 'red');
          assert.equal(s.text, `${n.type}.status.no-identity`, n.id);
        }
        for (const cfg of flow.filter((x) => x.type === 'pqc-config')) {
          const outcome = (helper.getNode(cfg.id) as unknown as { pqc?: { ok: boolean; problem?: string } }).pqc;
          assert.deepEqual({ ok: outcome?.ok, problem: outcome?.problem }, { ok: false, problem: 'no-identity' });
          assert.deepEqual(errorTexts(helper.getNode(cfg.id)), [], 'a missing identity is a status, not an error');
        }
        // Pressing an inject in front of a node of the pack: the failure reaches done(err), and a
        // Catch node scoped to that node hands it to the flow.
        for (const target of flow.filter((x) => PACK_TYPES.includes(x.type))) {
          const inject = upstream(flow, target.id).find((n) => n.type === 'inject');
          if (!inject) continue;
          const catches = flow.filter((n) => n.type === 'catch' && (!Array.isArray(n.scope) || n.scope.includes(target.id)));
          const caught = catches.flatMap((c) => (c.wires ?? []).flat()).map((id) => new Inbox(helper.getNode(id)));
          helper.getNode(inject.id).receive({});
          await waitForError(helper.getNode(target.id), /no device identity/);
          for (const box of caught) {
            const [msg] = await box.waitFor(1);
            const error = msg.error as { message: string; source: { id: string } };
            assert.match(error.message, /no device identity/);
            assert.equal(error.source.id, target.id);
          }
        }
      });

      /**
       * Provisions every pqc-config node exactly as the tab's info tells the importer (identity
       * new + ca issue, with the roles and filters given there), gives operator-mode revocation
       * nodes the CA key, points the config nodes at a fresh aedes broker, loads the flow and
       * waits until every device is connected and trusts every other.
       */
      async function provisionAndLoad(flow: FlowNode[]): Promise<{ deviceOf: (configId: unknown) => string }> {
        const provisioning = provisioningOf(flow);
        const ca: CaKeyPair = caFor();
        aedes = await startAedes();
        const credentials: Record<string, Record<string, string>> = {};
        const configs = flow.filter((n) => n.type === 'pqc-config');
        for (const cfg of configs) {
          const deviceId = String(cfg.deviceId);
          const plan = provisioning.get(deviceId);
          assert.ok(plan, `${file}: the tab's info tells how to provision "${deviceId}"`);
          const identity = issueCertificate(ca, createIdentity({ deviceId, sigAlgorithm: 'ML-DSA-44' }), {
            ...plan, notBefore: NOW - 3600_000, notAfter: NOW + 86400_000,
          });
          credentials[cfg.id] = { identity: identityToJson(identity) };
          // Only where to connect and which CA to pin change; everything else is the example as shipped.
          Object.assign(cfg, { broker: '127.0.0.1', port: aedes.port, caPublicKey: caPublicKeyToText(ca.publicKey) });
        }
        for (const op of flow.filter((n) => n.type === 'pqc-revocation' && n.mode === 'operator')) {
          assert.match(String(flow.find((n) => n.type === 'tab')?.info), /ca-key\.json/, `${file}: the info says where the CA key comes from`);
          credentials[op.id] = { caKey: caKeyPairToJson(ca) };
        }
        await helper.load(modulesFor(flow), flow, credentials);
        for (const cfg of configs) {
          const node = helper.getNode(cfg.id);
          await waitConnected(node);
          for (const other of configs) if (other !== cfg) await waitForPeer(node, String(other.deviceId));
        }
        return { deviceOf: (configId) => String(configs.find((c) => c.id === configId)?.deviceId) };
      }

      const shipped = readExample(file);
      if (shipped.some((n) => n.type === 'pqc-revocation' && n.mode === 'operator')) {
        it('provisioned as its instructions say, the operator revokes and every device applies it', async function () {
          const flow = readExample(file);
          await provisionAndLoad(flow);
          const operators = flow.filter((n) => n.type === 'pqc-revocation' && n.mode === 'operator');
          const devices = flow.filter((n) => n.type === 'pqc-revocation' && n.mode === 'device');
          assert.ok(devices.length > 0, `${file}: a device-mode node shows the result`);
          const reports = devices.map((d) => new Inbox(helper.getNode(d.wires![0][0])));
          for (const op of operators) {
            const published = new Inbox(helper.getNode(op.wires![0][0]));
            const inject = upstream(flow, op.id).find((n) => n.type === 'inject');
            assert.ok(inject && inject.payloadType === 'json', `${file}: an inject with a JSON request feeds ${op.id}`);
            const request = JSON.parse(String(inject.payload)) as { device_id: string };
            helper.getNode(inject.id).receive({});
            const [msg] = await published.waitFor(1);
            const result = msg.payload as { seq: number; added: Array<{ device_id: string; all_keys: boolean }>; alreadyRevoked: boolean; revoked: number };
            assert.equal(msg.topic, 'pqc/revocations');
            assert.equal(typeof result.seq, 'number');
            assert.equal(result.alreadyRevoked, false);
            assert.deepEqual(result.added.map((e) => [e.device_id, e.all_keys]), [[request.device_id, true]]);
            for (const report of reports) {
              const [entry] = await report.waitFor(1);
              assert.deepEqual(
                { device: (entry.payload as { device_id: string }).device_id, seq: (entry.payload as { seq: number }).seq },
                { device: request.device_id, seq: result.seq },
              );
            }
            assert.deepEqual(errorTexts(helper.getNode(op.id)), []);
            const status = `seq ${result.seq} · ${result.revoked} revoked`;
            await waitForStatus(helper.getNode(op.id), (st) => st.fill === 'green' && st.text === status);
            for (const d of devices) await waitForStatus(helper.getNode(d.id), (st) => st.fill === 'green' && st.text === status);
          }
        });
      }

      if (!shipped.some((n) => n.type === 'pqc-secure-out')) return;

      it('provisioned as its instructions say (CA, identities, certificates), it delivers end to end', async function () {
        const flow = readExample(file);
        const outs = flow.filter((n) => n.type === 'pqc-secure-out');
        const { deviceOf } = await provisionAndLoad(flow);
        const ins = flow.filter((n) => n.type === 'pqc-secure-in');
        const verified = new Map<string, Inbox>();
        const rejected = new Map<string, Inbox>();
        for (const n of ins) {
          const cfg = helper.getNode(String(n.pqcConfig));
          await waitSubscribed(cfg, String(n.topic));
          await waitSubscribed(cfg, readyConfig(cfg).session.topicKeyFilter(String(n.topic)));
          verified.set(n.id, new Inbox(helper.getNode(n.wires![0][0])));
          if (n.wires![1]?.[0]) rejected.set(n.id, new Inbox(helper.getNode(n.wires![1][0])));
        }

        for (const out of outs) {
          const topic = String(out.topic);
          const receivers = ins.filter((n) => topicMatches(String(n.topic), topic));
          assert.ok(receivers.length > 0, `${file}: some pqc-secure-in listens to ${topic}`);
          const injects = upstream(flow, out.id).filter((n) => n.type === 'inject');
          assert.ok(injects.length > 0, `${file}: an inject feeds ${out.id}`);
          for (const inject of injects) {
            const before = new Map(receivers.map((r) => [r.id, verified.get(r.id)!.messages.length]));
            helper.getNode(inject.id).receive({});
            for (const r of receivers) {
              const all = await verified.get(r.id)!.waitFor(before.get(r.id)! + 1);
              const msg = all.at(-1)!;
              assert.equal(msg.topic, topic);
              assert.equal((msg.pqc as { sender: string }).sender, deviceOf(out.pqcConfig));
              assert.ok(!Buffer.isBuffer(msg.payload), 'decoded as the receiver asked');
              // An inject wired straight to the out node: what arrives is what was injected.
              if (inject.wires!.flat().includes(out.id) && inject.payloadType === 'json') {
                assert.deepEqual(msg.payload, JSON.parse(String(inject.payload)));
              }
            }
          }
          await waitForStatus(helper.getNode(out.id), (s) => s.fill === 'green' && /^sent [1-9]/.test(String(s.text)));
          assert.deepEqual(errorTexts(helper.getNode(out.id)), []);
        }
        for (const [id, box] of rejected) assert.deepEqual(box.messages, [], `${id}: nothing rejected`);
        if (file === 'secure-telemetry-topic-mode.json') {
          const reading = [...verified.values()][0].messages[0].payload as Record<string, unknown>;
          assert.equal(typeof reading.temperature, 'number');
          assert.equal(reading.unit, 'C');
        }
      });
    });
  }
});

let ca: CaKeyPair | undefined;
function caFor(): CaKeyPair {
  ca ??= createCa({ sigAlgorithm: 'ML-DSA-44' });
  return ca;
}
