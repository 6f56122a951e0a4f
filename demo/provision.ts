/**
 * First-run provisioning of the demo: a CA and two identities with certificates, kept as 0600
 * files so later runs reuse them. The same steps a user runs with the `pqc-iiot` CLI.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  caKeyPairToJson, caPublicKeyToText, createCa, createIdentity, identityToJson, issueCertificate, parseCaKeyPairJson,
  parseIdentityJson, type CaKeyPair, type IdentityBundle,
} from '../lib';

export const DEMO_SENSOR_ID = 'demo-sensor';
export const DEMO_CONTROLLER_ID = 'demo-controller';
export const DEMO_TOPIC_FILTER = 'plant/#';

export interface DemoProvision {
  created: boolean;
  caPublicKeyText: string;
  sensorIdentityJson: string;
  controllerIdentityJson: string;
}

const YEAR_MS = 365 * 24 * 3600 * 1000;

export function provisionDemo(dir: string, now: number): DemoProvision {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caPath = join(dir, 'ca-key.json');
  const sensorPath = join(dir, `${DEMO_SENSOR_ID}.json`);
  const controllerPath = join(dir, `${DEMO_CONTROLLER_ID}.json`);
  if (existsSync(caPath) && existsSync(sensorPath) && existsSync(controllerPath)) {
    const ca: CaKeyPair = parseCaKeyPairJson(readFileSync(caPath, 'utf8'));
    const sensor: IdentityBundle = parseIdentityJson(readFileSync(sensorPath, 'utf8'));
    const controller: IdentityBundle = parseIdentityJson(readFileSync(controllerPath, 'utf8'));
    return {
      created: false,
      caPublicKeyText: caPublicKeyToText(ca.publicKey),
      sensorIdentityJson: identityToJson(sensor),
      controllerIdentityJson: identityToJson(controller),
    };
  }
  const ca = createCa();
  const validity = { notBefore: now - 60_000, notAfter: now + YEAR_MS };
  const sensor = issueCertificate(ca, createIdentity({ deviceId: DEMO_SENSOR_ID }), {
    roles: 'pub', topics: [DEMO_TOPIC_FILTER], ...validity,
  });
  const controller = issueCertificate(ca, createIdentity({ deviceId: DEMO_CONTROLLER_ID }), {
    roles: 'sub', topics: [DEMO_TOPIC_FILTER], ...validity,
  });
  writeFileSync(caPath, caKeyPairToJson(ca), { mode: 0o600 });
  writeFileSync(join(dir, 'ca.pub'), caPublicKeyToText(ca.publicKey) + '\n');
  writeFileSync(sensorPath, identityToJson(sensor), { mode: 0o600 });
  writeFileSync(controllerPath, identityToJson(controller), { mode: 0o600 });
  return {
    created: true,
    caPublicKeyText: caPublicKeyToText(ca.publicKey),
    sensorIdentityJson: identityToJson(sensor),
    controllerIdentityJson: identityToJson(controller),
  };
}
