/**
 * The highest secure/plain throughput ratio any implementation of the protocol could reach on
 * the measured machine (pure, tested in test/bench/bench.test.ts).
 *
 * A secure message costs at least what a plain one costs (the same nodes, MQTT clients and
 * broker, with every thread and the broker counted) plus the cryptography the protocol requires
 * for it, and the machine has `cores` seconds of CPU per second to spend. Everything else
 * (codecs, replay state, bigger packets, the single Node-RED event loop) only lowers the real
 * figure, so the bound is optimistic by construction.
 *
 * The cryptography of one topic-mode message with batch signatures (docs/PROTOCOL.md §4.3,
 * §4.5, §4.7), counted at its minimum:
 * - AES-256-GCM seal at the sender and open at the receiver;
 * - SHA-256, 6 + (n − 1) / n times: at the sender the message digest, the AES-GCM associated
 *   data and its leaf, plus its share of the n − 1 inner nodes of a tree of n leaves; at the
 *   receiver the associated data, the message digest and the leaf (a climb that meets a known
 *   node stops there);
 * - its share of one signature and one signature check per batch of `leaves`.
 */

export interface CeilingInputs {
  cores: number;
  plain: { msgsPerSec: number; cpuPercent: number; mosquittoCpuPercent: number };
  /** Median ms of AES-256-GCM seal + open of 100 bytes. */
  aesMs: number;
  /** Median ms of one framed SHA-256 message digest (about 200 bytes). */
  sha256Ms: number;
  signMs: number;
  verifyMs: number;
  /** Envelopes under one signature, n (the largest batch the protocol allows is 255). */
  leaves: number;
}

export interface Ceiling {
  /** CPU µs per plain message: Node-RED (all threads) and the broker. */
  plainCpuUs: number;
  /** CPU µs of the cryptography one secure message needs, at least. */
  cryptoUs: number;
  hashesPerMessage: number;
  leaves: number;
  cores: number;
  /** Secure messages per second if every core did nothing but plain's work and the cryptography. */
  maxMsgsPerSec: number;
  /** maxMsgsPerSec / plain messages per second. */
  maxRatio: number;
}

export function throughputCeiling(c: CeilingInputs): Ceiling {
  const plainCpuUs = ((c.plain.cpuPercent + c.plain.mosquittoCpuPercent) / 100) * (1e6 / c.plain.msgsPerSec);
  const hashesPerMessage = 6 + (c.leaves - 1) / c.leaves;
  const cryptoUs = 1000 * (c.aesMs + hashesPerMessage * c.sha256Ms + (c.signMs + c.verifyMs) / c.leaves);
  const maxMsgsPerSec = (c.cores * 1e6) / (plainCpuUs + cryptoUs);
  return {
    plainCpuUs, cryptoUs, hashesPerMessage, leaves: c.leaves, cores: c.cores,
    maxMsgsPerSec, maxRatio: maxMsgsPerSec / c.plain.msgsPerSec,
  };
}
