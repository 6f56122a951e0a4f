/**
 * Node status as core mqtt nodes show it (connected / connecting / disconnected), plus short
 * counters, and a reporter that coalesces bursts so a busy flow does not flood the editor.
 * Status texts that are i18n keys ("pqc-secure-in.status.…") are translated by the editor.
 */
import type { ConnectionState } from './mqtt-connection';
import type { ConfigProblem } from './config';

export interface NodeStatus {
  fill?: 'red' | 'green' | 'yellow' | 'blue' | 'grey';
  shape?: 'ring' | 'dot';
  text?: string;
}

export function connectionStatus(state: ConnectionState, counters?: string): NodeStatus {
  switch (state) {
    case 'connected':
      return { fill: 'green', shape: 'dot', text: counters || 'node-red:common.status.connected' };
    case 'connecting':
    case 'reconnecting':
      return { fill: 'yellow', shape: 'ring', text: 'node-red:common.status.connecting' };
    default:
      return { fill: 'red', shape: 'ring', text: 'node-red:common.status.disconnected' };
  }
}

/** Red status for a config node that cannot work; `nodeType` picks the locale namespace. */
export function problemStatus(nodeType: string, problem: ConfigProblem | 'no-config'): NodeStatus {
  return { fill: 'red', shape: 'ring', text: `${nodeType}.status.${problem}` };
}

/**
 * Short, language-neutral counters: "sent 12", "ok 120 · rej 3 · drop 2" (drop = duplicates,
 * own messages and envelopes for other recipients, which are expected and not reported).
 * Empty before the first message.
 */
export function sentCounters(sent: number, failed: number): string {
  if (sent === 0 && failed === 0) return '';
  return failed > 0 ? `sent ${sent} · err ${failed}` : `sent ${sent}`;
}

export function receivedCounters(ok: number, rejected: number, dropped = 0): string {
  if (ok === 0 && rejected === 0 && dropped === 0) return '';
  return `ok ${ok} · rej ${rejected}` + (dropped > 0 ? ` · drop ${dropped}` : '');
}

/**
 * Shows the first update at once and at most one more per interval after that, always ending
 * with the latest value. `close` cancels a pending update.
 */
export class StatusReporter {
  private timer: NodeJS.Timeout | undefined;
  private pending = false;
  private closed = false;

  constructor(
    private readonly show: (status: NodeStatus) => void,
    private readonly current: () => NodeStatus,
    private readonly intervalMs = 250,
  ) {}

  update(): void {
    if (this.closed) return;
    if (this.timer) {
      this.pending = true;
      return;
    }
    this.show(this.current());
    this.timer = setTimeout(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private flush(): void {
    this.timer = undefined;
    if (this.pending && !this.closed) {
      this.pending = false;
      this.update();
    }
  }
}
