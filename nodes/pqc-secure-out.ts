/**
 * `pqc-secure-out`: encrypts and signs msg.payload for each recipient and publishes it, like
 * core `mqtt out` (node settings win over msg). Every failure — bad msg, unknown recipient,
 * oversized envelope, full offline queue — reaches done(err), so a Catch node sees it.
 */
import { outRequestFrom, outSettingsFrom, type OutSettings } from '../lib/io/messages';
import { connectionStatus, problemStatus, sentCounters, StatusReporter } from '../lib/io/node-status';
import { readyConfigFor } from './config-lookup';
import type { RedNode, RedRuntime } from './red-api';

interface SecureOutProperties {
  name?: string;
  pqcConfig?: string;
  topic?: string;
  qos?: string;
  retain?: string;
  recipients?: string;
  keyStrategy?: string;
  keyThreshold?: string;
  keyEpoch?: string;
  signatures?: string;
}

export = function (RED: RedRuntime): void {
  function PqcSecureOut(this: RedNode, config: SecureOutProperties): void {
    RED.nodes.createNode(this, config);
    setUp(this, config);
  }

  function setUp(node: RedNode, config: SecureOutProperties): void {
    let settings: OutSettings;
    try {
      settings = outSettingsFrom(config);
    } catch (error) {
      const message = (error as Error).message;
      node.error(message);
      node.status(problemStatus(node.type, 'bad-settings'));
      node.on('input', (_msg, _send, done) => done(new Error(message)));
      return;
    }
    const pqc = readyConfigFor(RED, node, config.pqcConfig);
    if (!pqc) return;
    const { connection, endpoint } = pqc;

    let sent = 0;
    let failed = 0;
    const reporter = new StatusReporter(
      (status) => node.status(status),
      () => connectionStatus(connection.state, sentCounters(sent, failed)),
    );
    const stopStatus = connection.onStatus(() => reporter.update());
    connection.register(node.id);
    reporter.update();

    node.on('input', (msg, _send, done) => {
      let request;
      try {
        request = outRequestFrom(settings, msg);
      } catch (error) {
        failed++;
        reporter.update();
        done(error as Error);
        return;
      }
      endpoint.send(request.topic, request.data, request).then(
        (envelopes) => {
          sent += envelopes;
          reporter.update();
          done();
        },
        (error: unknown) => {
          failed++;
          reporter.update();
          done(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });

    node.on('close', (_removed, done) => {
      stopStatus();
      reporter.close();
      connection.deregister(node.id, done);
    });
  }

  RED.nodes.registerType('pqc-secure-out', PqcSecureOut);
};
