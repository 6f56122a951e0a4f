/**
 * Converting between Node-RED `msg.payload` values and the bytes that get encrypted, the way
 * core `mqtt out` / `mqtt in` do it, so flows behave the same with or without the security layer.
 */
import { isUtf8 } from 'node:buffer';

/** How `pqc-secure-in` presents verified plaintext (core `mqtt in` datatype option). */
export type Datatype = 'auto-detect' | 'buffer' | 'utf8' | 'json';
export const DATATYPES: readonly Datatype[] = Object.freeze(['auto-detect', 'buffer', 'utf8', 'json']);

export function isDatatype(value: unknown): value is Datatype {
  return typeof value === 'string' && (DATATYPES as readonly string[]).includes(value);
}

/**
 * Buffer → as is; string → UTF-8; object/array → JSON; number/boolean → their text; null → empty.
 * Throws for undefined, functions, symbols and objects JSON cannot encode (cycles, BigInt).
 */
export function payloadToBytes(payload: unknown): Buffer {
  if (Buffer.isBuffer(payload)) return payload;
  if (payload instanceof Uint8Array) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  if (payload === null) return Buffer.alloc(0);
  if (typeof payload === 'number' || typeof payload === 'boolean') return Buffer.from(String(payload), 'utf8');
  if (typeof payload === 'object') {
    try {
      return Buffer.from(JSON.stringify(payload), 'utf8');
    } catch {
      // JSON.stringify's message can quote part of the value; keep user data out of errors.
      throw new Error('msg.payload object cannot be converted to JSON');
    }
  }
  if (payload === undefined) throw new Error('msg.payload is missing');
  throw new Error(`msg.payload of type ${typeof payload} cannot be sent`);
}

export type DecodedPayload = { ok: true; value: unknown } | { ok: false; error: string };

/**
 * Verified plaintext → msg.payload. `auto-detect` gives parsed JSON when the text is JSON
 * (numbers and booleans included, as core `mqtt in` does), a string when it is valid UTF-8,
 * otherwise the Buffer. `json` fails on anything that is not JSON.
 */
export function bytesToPayload(data: Buffer, datatype: Datatype): DecodedPayload {
  switch (datatype) {
    case 'buffer':
      return { ok: true, value: data };
    case 'utf8':
      return { ok: true, value: data.toString('utf8') };
    case 'json': {
      const parsed = parseJson(data);
      return parsed.ok ? parsed : { ok: false, error: 'payload is not valid JSON' };
    }
    case 'auto-detect': {
      if (!isUtf8(data)) return { ok: true, value: data };
      const parsed = parseJson(data);
      return parsed.ok ? parsed : { ok: true, value: data.toString('utf8') };
    }
  }
}

function parseJson(data: Buffer): DecodedPayload {
  try {
    return { ok: true, value: JSON.parse(data.toString('utf8')) };
  } catch {
    return { ok: false, error: 'payload is not valid JSON' };
  }
}
