/**
 * Trust records for peers. A record is built only after every check passed; it is a separate
 * type from the decoded wire structures (STYLE habit 7), so no trust decision reads a field of
 * parsed bytes that was not verified. docs/PROTOCOL.md §6.
 */
import type { KemAlgorithm, SigAlgorithm } from '../crypto/algorithms';
import { roleAllowsPublish, roleAllowsSubscribe, type Role } from '../wire/certificate';
import { toHex } from '../wire/common';
import { matchesAny } from './topics';

export interface TrustedPeer {
  readonly deviceId: string;
  readonly keyEpoch: number;
  readonly keyId: Uint8Array;
  readonly kemAlgorithm: KemAlgorithm;
  readonly kemPublicKey: Uint8Array;
  readonly sigAlgorithm: SigAlgorithm;
  readonly sigPublicKey: Uint8Array;
  readonly role: Role;
  readonly topics: readonly string[];
  readonly notBefore: bigint;
  readonly notAfter: bigint;
  /** issued_at of the announcement it came from: an older one for the same key is refused. */
  readonly issuedAt: bigint;
  /** False only for peers accepted without a certificate outside strict mode. */
  readonly certified: boolean;
  /** SHA-256 of the announcement it came from: an identical re-delivery costs no crypto. */
  readonly announcementHash: Uint8Array;
}

export interface PeerSummary {
  deviceId: string;
  keyId: string;
  keyEpoch: number;
  role: Role;
  topics: string[];
  certified: boolean;
}

export function mayPublish(peer: TrustedPeer, topic: string): boolean {
  return roleAllowsPublish(peer.role) && matchesAny(peer.topics, topic);
}

export function maySubscribe(peer: TrustedPeer, topic: string): boolean {
  return roleAllowsSubscribe(peer.role) && matchesAny(peer.topics, topic);
}

export function summarize(peer: TrustedPeer): PeerSummary {
  return {
    deviceId: peer.deviceId,
    keyId: toHex(peer.keyId),
    keyEpoch: peer.keyEpoch,
    role: peer.role,
    topics: [...peer.topics],
    certified: peer.certified,
  };
}
