/**
 * Public API of the protocol core. Nothing exported here imports node-red or mqtt.
 * docs/PROTOCOL.md describes every structure and rule.
 */
export { REASONS, REASON_CODES, isReason, ok, fail, type Reason, type Result } from './result';
export { DEFAULT_LIMITS, resolveLimits, type Limits } from './limits';
export {
  KEM_ALGORITHMS, SIG_ALGORITHMS, DEFAULT_KEM, DEFAULT_SIG, DEFAULT_CA_SIG, parseKemName, parseSigName,
  isKemAlgorithm, isSigAlgorithm, type KemAlgorithm, type SigAlgorithm,
} from './crypto/algorithms';
export { cryptoBackend, cryptoBackendName, useCryptoBackend, nobleBackend, type CryptoBackend } from './crypto/backend';
export { nativeBackend } from './crypto/native';
export { LABELS } from './crypto/symmetric';
export { isValidDeviceId, DEVICE_ID_PATTERN } from './wire/fields';
export { peekType, STRUCTURE_TYPES, type StructureType } from './wire/header';
export { decodeAnnouncement, type DecodedAnnouncement } from './wire/announcement';
export { decodeCertificate, ROLES, type Role, type DecodedCertificate } from './wire/certificate';
export { decodeDirectEnvelope, type DecodedEnvelope } from './wire/envelope';
export { decodeCompactEnvelope, type DecodedCompactEnvelope } from './wire/compact-envelope';
export { decodeBatchManifest, type DecodedBatchManifest } from './wire/batch-manifest';
export {
  caPublicKeyToText, parseCaPublicKeyText, decodeCaPublicKey, encodeCaPublicKey, CA_KEY_TEXT_PREFIX, type CaPublicKey,
} from './wire/ca-key';
export { deriveKeyId, toHex } from './wire/common';
export { verifyCertificate } from './trust/certificates';
export { topicMatches, isValidTopicFilter, isValidTopicName } from './trust/topics';
export { replayCheck, replayCommit, EMPTY_WINDOW, type ReplayWindow, type ReplayVerdict } from './trust/replay';
export type { PeerSummary } from './trust/peers';
export {
  createIdentity, createCa, issueCertificate, identityToJson, parseIdentityJson, identityPublicInfo, fingerprintOf,
  caKeyPairToJson, parseCaKeyPairJson, IDENTITY_FORMAT, CA_FORMAT,
  type IdentityBundle, type CaKeyPair, type IdentityPublicInfo, type IssueOptions,
} from './session/identity';
export { SoftwareProvider, type SecurityProvider } from './session/provider';
export {
  SecureSession, initialSequenceFor, DEFAULT_KEYS_TOPIC_PREFIX, DEFAULT_REVOCATION_TOPIC, DEFAULT_BATCH_MANIFEST_PREFIX, SEQUENCE_RESERVATION, STATE_FORMAT,
  type TopicSealOptions, type ManifestVerdict,
  type SessionOptions, type OpenedMessage, type AnnouncementVerdict, type RevocationVerdict, type TrustSnapshot,
  type CounterSnapshot, type RestoreReport, type ThroughputStats,
} from './session/session';
export { DEFAULT_BATCH_OPTIONS, DEFAULT_VERIFIED_ROOTS, type BatchOptions } from './session/batch';
export { DEFAULT_VERIFIED_DIGESTS, type ManifestMessage, type ManifestSink } from './session/compact';
export { DEFAULT_BUDGET, VerificationBudget, type BudgetOptions, type BudgetOverrides } from './trust/budget';
export { CryptoWorkerPool, setCryptoOffload, cryptoOffload, closeSharedCryptoPool, type OffloadMode } from './crypto/worker-pool';
export { issueRevocation, applyRevocation, isRevoked, EMPTY_REVOCATIONS, type RevocationState } from './trust/revocation';
export { decodeRevocation, ALL_KEYS, type RevocationEntry, type DecodedRevocation } from './wire/revocation';
export { verifyAuditLog, AuditLogVerifier, AUDIT_REASONS } from './trust/audit';
