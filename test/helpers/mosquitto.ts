/**
 * Starts a private mosquitto process for broker tests: its own free loopback port, its own config
 * file, data dir and log in a temporary directory. It never touches a mosquitto that may already
 * run on 1883 (that one's ACLs, retained messages and persistence would leak into the tests).
 *
 * CI installs Debian's mosquitto (2.0.x) with apt-get; set MOSQUITTO_BIN to use another binary.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, LOOPBACK, waitForPort } from './free-port';

export interface MosquittoOptions {
  /** Keep sessions and retained messages in the data dir (survives stop/kill + restart). */
  persistence?: boolean;
  /**
   * Save the persistence file after this many changes (retained messages, subscriptions, queued
   * messages) instead of on a timer; 1 makes state survive kill(). mosquitto's default is a save
   * every 1800 s and on a graceful stop.
   */
  autosaveAfterChanges?: number;
  /** Broker's maximum packet size in bytes (sent to MQTT 5 clients in CONNACK). */
  maxPacketSize?: number;
  /** Further raw config lines, appended as they are. */
  extraConfig?: readonly string[];
  /** How long to wait for the listener to accept connections. */
  startTimeoutMs?: number;
}

export interface MosquittoBroker {
  readonly port: number;
  /** mqtt://127.0.0.1:PORT */
  readonly url: string;
  /** Broker log (all start-ups appended); read it when a test fails. */
  readonly logPath: string;
  /** Holds the persistence file (mosquitto.db) when persistence is on. */
  readonly dataDir: string;
  readonly configPath: string;
  /** True while the process is running. */
  readonly running: boolean;
  /** Graceful stop (SIGTERM, SIGKILL after a grace period), then removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash or power cut would; keeps the temp dir so restart() can follow. */
  kill(): Promise<void>;
  /** Starts the broker again on the same port with the same config and data (stopping it first if running). */
  restart(): Promise<void>;
}

const DEFAULT_BINARY = '/usr/sbin/mosquitto';
const GRACE_MS = 3000;

/** Every live broker, so a test run that exits early does not leave processes or temp dirs behind. */
const live = new Set<() => void>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const cleanup of live) cleanup();
  });
}

export function mosquittoBinary(): string {
  const fromEnv = process.env.MOSQUITTO_BIN;
  if (fromEnv) return fromEnv;
  if (fs.existsSync(DEFAULT_BINARY)) return DEFAULT_BINARY;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'mosquitto');
    if (dir && fs.existsSync(candidate)) return candidate;
  }
  throw new Error('mosquitto not found: install it (apt-get install mosquitto) or set MOSQUITTO_BIN');
}

export function mosquittoConfig(port: number, dataDir: string, options: MosquittoOptions): string {
  const lines = [
    `listener ${port} ${LOOPBACK}`,
    'allow_anonymous true',
    // When the tests run as root, mosquitto would switch to the "mosquitto" user and then fail to
    // write into our root-owned temp dir. Naming the current user keeps it; as non-root it is ignored.
    `user ${os.userInfo().username}`,
    'log_dest stderr',
    'log_type all',
    'log_timestamp true',
    'connection_messages true',
  ];
  if (options.persistence) {
    lines.push('persistence true', `persistence_location ${dataDir}${path.sep}`);
    if (options.autosaveAfterChanges !== undefined) {
      lines.push('autosave_on_changes true', `autosave_interval ${options.autosaveAfterChanges}`);
    }
  } else {
    lines.push('persistence false');
  }
  if (options.maxPacketSize !== undefined) lines.push(`max_packet_size ${options.maxPacketSize}`);
  lines.push(...(options.extraConfig ?? []));
  return lines.join('\n') + '\n';
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<MosquittoBroker> {
  const binary = mosquittoBinary();
  const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pqc-mosquitto-'));
  const dataDir = path.join(tempDir, 'data');
  const configPath = path.join(tempDir, 'mosquitto.conf');
  const logPath = path.join(tempDir, 'mosquitto.log');
  fs.mkdirSync(dataDir);
  const startTimeoutMs = options.startTimeoutMs ?? 10_000;

  let port = 0;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let removed = false;

  const removeTempDir = (): void => {
    if (removed) return;
    removed = true;
    fs.rmSync(tempDir, { recursive: true, force: true });
  };
  const emergencyCleanup = (): void => {
    child?.kill('SIGKILL');
    removeTempDir();
  };

  const launch = async (): Promise<void> => {
    const logFd = fs.openSync(logPath, 'a');
    let proc: ChildProcess;
    try {
      proc = spawn(binary, ['-c', configPath], { stdio: ['ignore', logFd, logFd] });
    } finally {
      // The child holds its own copy of the descriptor.
      fs.closeSync(logFd);
    }
    child = proc;
    let dead = false;
    exited = new Promise<void>((resolve) => {
      proc.once('exit', () => {
        dead = true;
        if (child === proc) child = undefined;
        resolve();
      });
      proc.once('error', () => {
        dead = true;
        if (child === proc) child = undefined;
        resolve();
      });
    });
    const up = await waitForPort(port, { timeoutMs: startTimeoutMs, abort: () => dead });
    if (!up) {
      proc.kill('SIGKILL');
      await exited;
      const log = fs.existsSync(logPath) ? fs.readFileSync(logPath, 'utf8').slice(-2000) : '';
      throw new Error(
        `mosquitto did not accept connections on ${LOOPBACK}:${port} within ${startTimeoutMs} ms` +
          (dead ? ' (process exited)' : '') +
          `\n--- ${logPath} ---\n${log}`,
      );
    }
  };

  const terminate = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (!proc) return;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), GRACE_MS);
    try {
      await exited;
    } finally {
      clearTimeout(timer);
    }
  };

  installExitHook();
  live.add(emergencyCleanup);
  try {
    port = await freePort();
    fs.writeFileSync(configPath, mosquittoConfig(port, dataDir, options));
    await launch();
  } catch (err) {
    live.delete(emergencyCleanup);
    removeTempDir();
    throw err;
  }

  return {
    port,
    url: `mqtt://${LOOPBACK}:${port}`,
    logPath,
    dataDir,
    configPath,
    get running() {
      return child !== undefined;
    },
    async stop() {
      await terminate('SIGTERM');
      live.delete(emergencyCleanup);
      removeTempDir();
    },
    async kill() {
      await terminate('SIGKILL');
    },
    async restart() {
      if (removed) throw new Error('mosquitto broker was stopped; start a new one');
      await terminate('SIGTERM');
      await launch();
    },
  };
}
