/**
 * An embedded Node-RED runtime for the benchmark: the real runtime (no test helper spies), this
 * package loaded from the repository as an installed node module would be, core `mqtt in` /
 * `mqtt out`, and a tiny `bench-sink` node that hands every message it gets to the benchmark.
 * No editor, no HTTP listener, no telemetry: nothing leaves loopback.
 */
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

interface RedApi {
  init(server: http.Server, settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  nodes: { getNode(id: string): unknown };
}

export type SinkHandler = (msg: { payload?: unknown; topic?: unknown }) => void;

const SINK_JS = `module.exports = function (RED) {
  function BenchSink(config) {
    RED.nodes.createNode(this, config);
    const id = this.id;
    this.on('input', function (msg, send, done) {
      const hook = globalThis.__pqcBenchSink;
      if (hook) hook(id, msg);
      done();
    });
  }
  RED.nodes.registerType('bench-sink', BenchSink);
};
`;

const SINK_HTML = `<script type="text/javascript">
  RED.nodes.registerType('bench-sink', { category: 'common', defaults: {}, inputs: 1, outputs: 0, label: 'bench sink' });
</script>
`;

export interface EmbeddedRed {
  readonly userDir: string;
  getNode<T = Record<string, unknown>>(id: string): T | undefined;
  /** Routes what the sink node `id` receives to `handler` (one handler per sink). */
  onSink(id: string, handler: SinkHandler | undefined): void;
  stop(): Promise<void>;
}

export async function startNodeRed(opts: {
  repoRoot: string;
  flows: object[];
  credentials: Record<string, Record<string, string>>;
}): Promise<EmbeddedRed> {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pqc-bench-red-'));
  const sinkDir = path.join(userDir, 'bench-nodes');
  fs.mkdirSync(sinkDir);
  fs.writeFileSync(path.join(sinkDir, 'bench-sink.js'), SINK_JS);
  fs.writeFileSync(path.join(sinkDir, 'bench-sink.html'), SINK_HTML);
  fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(opts.flows));
  fs.writeFileSync(path.join(userDir, 'flows_cred.json'), JSON.stringify(opts.credentials), { mode: 0o600 });

  const handlers = new Map<string, SinkHandler>();
  (globalThis as { __pqcBenchSink?: (id: string, msg: Parameters<SinkHandler>[0]) => void }).__pqcBenchSink = (id, msg) => handlers.get(id)?.(msg);

  const req = createRequire(path.join(opts.repoRoot, 'package.json'));
  const RED = req('node-red') as RedApi;
  const server = http.createServer();
  RED.init(server, {
    userDir,
    flowFile: 'flows.json',
    credentialSecret: false,
    nodesDir: [opts.repoRoot, sinkDir],
    httpAdminRoot: false,
    httpNodeRoot: false,
    disableEditor: true,
    uiHost: '127.0.0.1',
    logging: { console: { level: 'warn', metrics: false, audit: false } },
    telemetry: { enabled: false },
    diagnostics: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    editorTheme: { projects: { enabled: false }, tours: false },
    functionExternalModules: false,
  });
  await RED.start();
  return {
    userDir,
    getNode<T>(id: string) {
      return RED.nodes.getNode(id) as T | undefined;
    },
    onSink(id, handler) {
      if (handler) handlers.set(id, handler);
      else handlers.delete(id);
    },
    async stop() {
      await RED.stop();
      server.close();
      delete (globalThis as { __pqcBenchSink?: unknown }).__pqcBenchSink;
      fs.rmSync(userDir, { recursive: true, force: true });
    },
  };
}
