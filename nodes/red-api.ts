/**
 * The slice of the Node-RED runtime API these nodes use, typed narrowly (node-red ships no
 * types). Types only: compiles to an empty module.
 */
import type { ConfigOutcome } from '../lib/io/config';
import type { NodeStatus } from '../lib/io/node-status';

export interface NodeMessage {
  [key: string]: unknown;
  _msgid?: string;
  payload?: unknown;
  topic?: unknown;
}

export type SendFunction = (msg: NodeMessage | Array<NodeMessage | null>) => void;
export type DoneFunction = (error?: Error) => void;

export interface RedNode {
  readonly id: string;
  readonly type: string;
  name?: string;
  credentials?: Record<string, string | undefined>;
  on(event: 'input', listener: (msg: NodeMessage, send: SendFunction, done: DoneFunction) => void): void;
  on(event: 'close', listener: (removed: boolean, done: () => void) => void): void;
  status(status: NodeStatus | Record<string, never>): void;
  send(msg: NodeMessage | Array<NodeMessage | null>): void;
  error(error: string | Error, msg?: NodeMessage): void;
  warn(message: string): void;
  log(message: string): void;
}

export interface RedHttpRequest {
  body?: unknown;
}

export interface RedHttpResponse {
  status(code: number): RedHttpResponse;
  json(body: unknown): void;
}

export type RedHttpHandler = (req: RedHttpRequest, res: RedHttpResponse, next: () => void) => void;

export interface RedRuntime {
  nodes: {
    createNode(node: object, config: object): void;
    registerType(type: string, constructor: (this: never, config: never) => void, options?: { credentials?: Record<string, { type: 'text' | 'password' }> }): void;
    getNode(id: string): unknown;
  };
  httpAdmin: { post(path: string, ...handlers: RedHttpHandler[]): void };
  auth: { needsPermission(permission: string): RedHttpHandler };
  _(key: string, substitutions?: Record<string, unknown>): string;
}

/** What a `tls-config` node offers to the nodes using it. */
export interface TlsConfigNode {
  addTLSOptions(options: Record<string, unknown>): void;
}

/** What the secure in/out nodes find on the `pqc-config` node they reference. */
export interface PqcConfigNode extends RedNode {
  pqc: ConfigOutcome;
}
