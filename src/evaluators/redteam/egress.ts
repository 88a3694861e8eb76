import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { ModelgateError } from '../../core/errors.js';

/**
 * Addresses an endpoint named by host name must never resolve to: loopback, private,
 * link-local, shared (CGNAT), unspecified, multicast, reserved and documentation ranges, and
 * their IPv4-mapped IPv6 forms. Reaching a server at such an address is still possible: list
 * it by address in MODELGATE_ALLOWED_ENDPOINTS.
 */
const BLOCKED = (() => {
  const b = new BlockList();
  for (const [net, bits] of [
    ['0.0.0.0', 8],
    ['10.0.0.0', 8],
    ['100.64.0.0', 10],
    ['127.0.0.0', 8],
    ['169.254.0.0', 16],
    ['172.16.0.0', 12],
    ['192.0.0.0', 24],
    ['192.0.2.0', 24],
    ['192.168.0.0', 16],
    ['198.18.0.0', 15],
    ['198.51.100.0', 24],
    ['203.0.113.0', 24],
    ['224.0.0.0', 4],
    ['240.0.0.0', 4],
  ] as const) {
    b.addSubnet(net, bits, 'ipv4');
  }
  for (const [net, bits] of [
    // Unspecified, loopback and the deprecated IPv4-compatible ::a.b.c.d.
    ['::', 96],
    ['64:ff9b::', 96],
    ['100::', 64],
    ['2001:db8::', 32],
    // Teredo and 6to4 carry an IPv4 address inside: refused rather than decoded.
    ['2001::', 32],
    ['2002::', 16],
    ['64:ff9b:1::', 48],
    ['fec0::', 10],
    ['fc00::', 7],
    ['fe80::', 10],
    ['ff00::', 8],
  ] as const) {
    b.addSubnet(net, bits, 'ipv6');
  }
  return b;
})();

/** Whether an address is one a host name may not resolve to (see BLOCKED). */
export function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  if (family === 6) {
    // IPv4-mapped addresses (::ffff:a.b.c.d) are checked as the IPv4 address they carry.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return BLOCKED.check(mapped[1]!, 'ipv4');
    return BLOCKED.check(address, 'ipv6');
  }
  return BLOCKED.check(address, 'ipv4');
}

/**
 * Why a URL, as written, could reach another path than the one its parsed form shows, or
 * null. The prefix check compares parsed URLs, but a server (or a proxy before it) may decode
 * `%2F` into a separator, `%5C` or `\` into one, `%2E%2E` or `..;` into a parent step, or
 * `%252F` twice: `/v1/..%2F..%2Fadmin` is under `/v1/` to the check and `/admin` to such a
 * server. None of these has a use in an API base URL, so they are refused outright, as are
 * control characters and spaces (which the URL parser silently drops).
 */
function pathTrick(raw: string): string | null {
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return 'a control character or a space';
  }
  if (raw.includes('\\')) return 'a backslash';
  const encoded = /%(2f|5c|2e|25|00)/i.exec(raw);
  if (encoded) return `a percent-encoded ${ENCODED[encoded[1]!.toLowerCase()]} (${encoded[0]})`;
  // The path as written (the parser has already removed its dot segments).
  const path = raw.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '').replace(/[?#].*$/s, '');
  if (path.split('/').some((seg) => /^\.\.?(;.*)?$/.test(seg))) return 'a `.` or `..` segment';
  return null;
}
const ENCODED: Record<string, string> = {
  '2f': 'slash',
  '5c': 'backslash',
  '2e': 'dot',
  '25': 'percent sign (double encoding)',
  '00': 'NUL',
};

/** A URL prefix in canonical form: scheme and host lower case, no default port, a path. */
function canonical(raw: string, what: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error(`${what}: ${JSON.stringify(raw)} is not an absolute URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new Error(`${what}: ${raw} must be an http or https URL`);
  if (u.search || u.hash) throw new Error(`${what}: ${raw} must not have a query or fragment`);
  return u;
}

/**
 * Why a URL is not an unambiguous address of one server and path (credentials before the
 * host, or a path that a server could read differently from its parsed form), or null. The
 * answer names the URL without its credentials.
 */
function ambiguity(raw: string, u: URL): string | null {
  // `https://api.example.com@evil.example/` names evil.example; credentials have their own
  // place (secret headers), never the URL.
  if (u.username || u.password || /^[^/?#]*\/\/[^/?#]*@/.test(raw))
    return `on host ${u.host} must not hold credentials (user@host)`;
  const trick = pathTrick(raw);
  return trick ? `${JSON.stringify(raw)} holds ${trick}; write the path plainly` : null;
}

/** Where an endpoint may be reached, once checked: the URL and whether to resolve its host. */
export interface AllowedEndpoint {
  url: URL;
  /** The host is a name: every address it resolves to must be public. */
  resolve: boolean;
}

/**
 * The operator's allow-list of outbound endpoints (MODELGATE_ALLOWED_ENDPOINTS): URL prefixes.
 * An endpoint is allowed when it is under a prefix (same scheme, host and port, and a path
 * that continues the prefix's at a `/`). A host given by name must resolve only to public
 * addresses, checked on every connection (so a DNS answer that changes to a private address
 * is refused, not used); a host given as an address is reached only if a prefix names it.
 */
export class EgressPolicy {
  readonly prefixes: readonly string[];

  constructor(prefixes: readonly string[]) {
    this.prefixes = prefixes.map((p) => {
      const u = canonical(p.trim(), 'allowed endpoint');
      const why = ambiguity(p.trim(), u);
      if (why) throw new Error(`allowed endpoint ${why}`);
      return u.href;
    });
  }

  /** Parses MODELGATE_ALLOWED_ENDPOINTS (comma- or space-separated URL prefixes). */
  static parse(value: string | undefined): EgressPolicy {
    return new EgressPolicy((value ?? '').split(/[\s,]+/).filter(Boolean));
  }

  /**
   * Whether a URL, in the canonical form `check` returns, is under a prefix: at a path
   * boundary, `.../v1` covers `.../v1` and `.../v1/chat/completions`, not `.../v10`.
   */
  covers(href: string): boolean {
    return this.prefixes.some((p) => {
      const base = p.endsWith('/') ? p.slice(0, -1) : p;
      return href === p || href === base || href.startsWith(`${base}/`);
    });
  }

  /** The endpoint as it will be reached, or ENDPOINT_NOT_ALLOWED before anything is sent. */
  check(raw: string): AllowedEndpoint {
    let url: URL;
    try {
      url = canonical(raw, 'endpoint');
    } catch (e) {
      throw new ModelgateError('VALIDATION_FAILED', (e as Error).message, { endpoint: raw });
    }
    // Refused before the prefix check: the request goes to `url`, the parsed form checked,
    // and nothing about how `raw` was spelled may make a server read another path.
    const why = ambiguity(raw, url);
    if (why)
      throw new ModelgateError('ENDPOINT_NOT_ALLOWED', `endpoint ${why}`, {
        endpoint: url.username || url.password ? url.host : raw,
      });
    const href = url.href;
    if (!this.covers(href))
      throw new ModelgateError(
        'ENDPOINT_NOT_ALLOWED',
        this.prefixes.length === 0
          ? `endpoint ${href} is not allowed: no outbound endpoints are allowed on this server (an operator sets MODELGATE_ALLOWED_ENDPOINTS)`
          : `endpoint ${href} is not under any allowed prefix (MODELGATE_ALLOWED_ENDPOINTS: ${this.prefixes.join(', ')})`,
        { endpoint: href },
      );
    const host = url.hostname.replace(/^\[|\]$/g, '');
    return { url, resolve: isIP(host) === 0 };
  }

  /**
   * A `lookup` for node:http that resolves like the system does, then refuses the connection
   * when any answer is a blocked address: checked at connect time, so the address used is the
   * address checked.
   */
  static lookup(
    hostname: string,
    options: { family?: number | string; all?: boolean },
    callback: (
      err: NodeJS.ErrnoException | null,
      address: string | LookupAddress[],
      family?: number,
    ) => void,
  ): void {
    dnsLookup(hostname, { all: true, family: Number(options.family) || 0 }, (err, addresses) => {
      if (err) return callback(err, '');
      const bad = addresses.find((a) => isBlockedAddress(a.address));
      if (bad || addresses.length === 0) {
        const e = new ModelgateError(
          'ENDPOINT_NOT_ALLOWED',
          `endpoint host ${hostname} resolves to ${bad?.address ?? 'nothing'}, a private, loopback or reserved address; list the server by address in MODELGATE_ALLOWED_ENDPOINTS to reach it`,
          { host: hostname, address: bad?.address ?? null },
        );
        return callback(e as unknown as NodeJS.ErrnoException, '');
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0]!;
      callback(null, first.address, first.family);
    });
  }
}
