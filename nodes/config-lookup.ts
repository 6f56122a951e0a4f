/**
 * Finds the `pqc-config` node a secure in/out node references. When it is missing or cannot
 * work (no identity, no CA…), the node shows a red status, answers every input with done(err)
 * and closes cleanly: a flow imported without credentials deploys without crashing.
 */
import type { ConfigOutcome } from '../lib/io/config';
import { problemStatus } from '../lib/io/node-status';
import type { PqcConfigNode, RedNode, RedRuntime } from './red-api';

export type ReadyConfig = Extract<ConfigOutcome, { ok: true }>;

export function readyConfigFor(RED: RedRuntime, node: RedNode, configId: unknown): ReadyConfig | undefined {
  const configNode = typeof configId === 'string' && configId !== '' ? (RED.nodes.getNode(configId) as PqcConfigNode | null) : null;
  const outcome = configNode?.pqc;
  if (outcome?.ok) return outcome;
  const problem = outcome ? outcome.problem : 'no-config';
  const message = outcome ? outcome.message : 'no pqc-config node selected';
  node.status(problemStatus(node.type, problem));
  node.on('input', (_msg, _send, done) => done(new Error(message)));
  node.on('close', (_removed, done) => done());
  return undefined;
}
