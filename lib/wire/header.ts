/**
 * Common header of every structure: magic "PQ" (0x5051), protocol version, structure type.
 * Seed 000 starts its key advertisement with magic + version; we keep that and add a type byte
 * so one parser (and `pqc-iiot inspect`) can tell structures apart. docs/PROTOCOL.md §2.
 */
import type { Field } from './fields';

export const MAGIC = 0x5051;
export const PROTOCOL_VERSION = 0x01;

export const STRUCTURE_TYPES = Object.freeze({
  announcement: 0x01,
  certificate: 0x02,
  directEnvelope: 0x03,
  caPublicKey: 0x04,
  revocation: 0x05,
  topicKey: 0x06,
  topicEnvelope: 0x07,
  compactEnvelope: 0x08,
  batchManifest: 0x09,
} as const);

export type StructureType = keyof typeof STRUCTURE_TYPES;

export const HEADER_BYTES = 4;

/** The 4-byte header for one structure type; a mismatch fails with the matching reason. */
export function header(type: StructureType): Field<StructureType> {
  const code = STRUCTURE_TYPES[type];
  const bytes = Uint8Array.of(MAGIC >> 8, MAGIC & 0xff, PROTOCOL_VERSION, code);
  return {
    name: `header(${type})`,
    encode(w) {
      w.push(bytes);
    },
    decode(r) {
      const b = r.take(HEADER_BYTES);
      if (b === undefined) return undefined;
      if (((b[0] << 8) | b[1]) !== MAGIC) return r.fail('bad-magic');
      if (b[2] !== PROTOCOL_VERSION) return r.fail('bad-version');
      if (b[3] !== code) return r.fail('bad-type');
      return type;
    },
  };
}

const typeByCode = new Map((Object.keys(STRUCTURE_TYPES) as StructureType[]).map((k) => [STRUCTURE_TYPES[k] as number, k]));

/** Reads the type of a structure without decoding it; undefined if not ours. */
export function peekType(bytes: Uint8Array): StructureType | undefined {
  if (bytes.length < HEADER_BYTES || ((bytes[0] << 8) | bytes[1]) !== MAGIC) return undefined;
  return typeByCode.get(bytes[3]);
}
