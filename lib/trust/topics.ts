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
 * wildcard (MQTT rule), so a '#' right does not grant '$SYS/...'. Walks both strings level by
 * level without splitting them: this runs for every message against every subscription.
 */
export function topicMatches(filter: string, topic: string): boolean {
  let fi = 0;
  let ti = 0;
  let topicDone = false;
  for (;;) {
    let fe = filter.indexOf('/', fi);
    if (fe < 0) fe = filter.length;
    const levelLength = fe - fi;
    // '+' or '#' only when the whole level is that one character.
    const wildcard = levelLength === 1 ? filter.charCodeAt(fi) : 0;
    if (fi === 0 && (wildcard === PLUS || wildcard === HASH) && topic.charCodeAt(0) === DOLLAR) return false;
    if (wildcard === HASH) return true;
    if (topicDone) return false;
    let te = topic.indexOf('/', ti);
    if (te < 0) te = topic.length;
    if (wildcard !== PLUS) {
      if (te - ti !== levelLength) return false;
      for (let k = 0; k < levelLength; k++) if (filter.charCodeAt(fi + k) !== topic.charCodeAt(ti + k)) return false;
    }
    topicDone = te === topic.length;
    if (fe === filter.length) return topicDone;
    fi = fe + 1;
    ti = te + 1;
  }
}

const PLUS = 0x2b;
const HASH = 0x23;
const DOLLAR = 0x24;

export function matchesAny(filters: readonly string[], topic: string): boolean {
  return filters.some((f) => topicMatches(f, topic));
}
