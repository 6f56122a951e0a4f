/**
 * MQTT topic names and filters (MQTT 3.1.1 §4.7 / 5.0 §4.7) as used by certificate rights:
 * a device may publish only on topics matched by its certificate's filters. docs/PROTOCOL.md §6.6.
 */

/** A topic a message is published on: no wildcards, no NUL, 1..maxBytes UTF-8 bytes. */
export function isValidTopicName(topic: unknown, maxBytes = 65535): topic is string {
  if (typeof topic !== 'string' || topic.length === 0) return false;
  if (topic.includes('+') || topic.includes('#') || topic.includes('\u0000')) return false;
  // A lone surrogate would encode as U+FFFD: two distinct strings, one signed byte string.
  if (!topic.isWellFormed()) return false;
  return Buffer.byteLength(topic, 'utf8') <= maxBytes;
}

/** A filter: '+' only as a whole level, '#' only as the whole last level. */
export function isValidTopicFilter(filter: unknown, maxBytes = 65535): filter is string {
  if (typeof filter !== 'string' || filter.length === 0 || filter.includes('\u0000') || !filter.isWellFormed()) return false;
  if (Buffer.byteLength(filter, 'utf8') > maxBytes) return false;
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return false;
    if (level.includes('+') && level !== '+') return false;
  }
  return true;
}

/**
 * True if `topic` matches `filter`. Topics starting with '$' are not matched by a leading
 * wildcard (MQTT rule), so a '#' right does not grant '$SYS/...'.
 */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export function matchesAny(filters: readonly string[], topic: string): boolean {
  return filters.some((f) => topicMatches(f, topic));
}
