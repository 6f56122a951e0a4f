/**
 * `pqc-secure-in`: subscribes (wildcards allowed), and emits only verified, decrypted,
 * replay-filtered messages on output 1. Rejections go to the optional output 2 with a reason;
 * expected drops (duplicates, own messages, messages for other recipients) are only counted.
 */
import type { Verdict } from '../lib/io/endpoint';
import { inSettingsFrom, rejectionMsg, verifiedMsg, type InSettings } from '../lib/io/messages';
import { connectionStatus, problemStatus, receivedCounters, StatusReporter } from '../lib/io/node-status';
import { readyConfigFor } from './config-lookup';
import type { NodeMessage, RedNode, RedRuntime } from './red-api';

interface SecureInProperties {
  name?: string;
  pqcConfig?: string;
  topic?: string;
  qos?: string;
  datatype?: string;
  rejections?: boolean;
}

export = function (RED: RedRuntime): void {
  function PqcSecureIn(this: RedNode, config: SecureInProperties): void {
    RED.nodes.createNode(this, config);
    setUp(this, config);
  }

  function setUp(node: RedNode, config: SecureInProperties): void {
    let settings: InSettings;
    try {
      settings = inSettingsFrom(config);
    } catch (error) {
      node.error((error as Error).message);
      node.status(problemStatus(node.type, 'bad-settings'));
      return;
    }
    const pqc = readyConfigFor(RED, node, config.pqcConfig);
    if (!pqc) return;
    const { connection, endpoint } = pqc;

    let accepted = 0;
    let rejected = 0;
    let dropped = 0;
    const reporter = new StatusReporter(
      (status) => node.status(status),
      () => connectionStatus(connection.state, receivedCounters(accepted, rejected, dropped)),
    );

    const onVerdict = (verdict: Verdict): void => {
      if (verdict.ok) {
        const result = verifiedMsg(verdict.message, settings.datatype);
        if (result.ok) {
          accepted++;
          emit(result.msg, null);
        } else {
          // Authentic, but not what the datatype promised (json): an error the flow can catch.
          rejected++;
          node.error(result.error, result.msg);
        }
      } else if (verdict.quiet) {
        dropped++;
      } else {
        rejected++;
        if (settings.rejectionsOutput) emit(null, rejectionMsg(verdict.rejection));
      }
      reporter.update();
    };

    function emit(first: NodeMessage | null, second: NodeMessage | null): void {
      node.send(settings.rejectionsOutput ? [first, second] : [first]);
    }

    const stopStatus = connection.onStatus(() => reporter.update());
    connection.register(node.id);
    endpoint.subscribe(settings.filter, settings.qos, onVerdict, node.id);
    reporter.update();

    node.on('close', (_removed, done) => {
      stopStatus();
      reporter.close();
      endpoint.removeOwner(node.id);
      connection.deregister(node.id, done);
    });
  }

  RED.nodes.registerType('pqc-secure-in', PqcSecureIn);
};
