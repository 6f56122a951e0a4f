/** The parts of node-red-node-test-helper the node tests use (the package ships no types). */
declare module 'node-red-node-test-helper' {
  import type { EventEmitter } from 'node:events';

  export interface TestNode extends EventEmitter {
    id: string;
    type: string;
    credentials?: Record<string, string | undefined>;
    receive(msg: Record<string, unknown>): void;
    [key: string]: unknown;
  }

  export type NodeModule = (RED: never) => void;

  interface SuperTestRequest {
    send(body: unknown): SuperTestRequest;
    set(name: string, value: string): SuperTestRequest;
    expect(status: number): Promise<{ status: number; body: Record<string, unknown> }>;
    then: Promise<{ status: number; body: Record<string, unknown> }>['then'];
  }

  interface NodeTestHelper {
    init(nodeRedRuntime: string, userSettings?: Record<string, unknown>): void;
    startServer(): Promise<void>;
    stopServer(): Promise<void>;
    load(nodes: NodeModule | NodeModule[], flow: object[], credentials?: Record<string, Record<string, string>>): Promise<void>;
    setFlows(flow: object[], type: 'full' | 'flows' | 'nodes', credentials?: Record<string, Record<string, string>>): Promise<void>;
    unload(): Promise<void>;
    getNode(id: string): TestNode;
    request(): { post(path: string): SuperTestRequest; get(path: string): SuperTestRequest };
  }

  const helper: NodeTestHelper;
  export default helper;
}
