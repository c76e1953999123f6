import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/** Why a `callbackUrl` may not be used; `reason` is stable, the message says what to change. */
export class CallbackUrlError extends Error {
  override readonly name = 'CallbackUrlError';
  readonly code = 'CallbackUrlError';
  readonly reason: 'scheme' | 'address' | 'unresolvable';

  constructor(reason: CallbackUrlError['reason'], message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.reason = reason;
  }
}

export interface CallbackPolicyOptions {
  /** The local stack: `http` and private, loopback or link-local addresses are allowed too. */
  allowPrivate: boolean;
  /** Every address a host name resolves to (the system resolver by default). */
  resolve?: (host: string) => Promise<string[]>;
}

const resolveAll = (host: string) =>
  new Promise<string[]>((resolve, reject) =>
    dnsLookup(host, { all: true, verbatim: true }, (error, addresses) =>
      error ? reject(error) : resolve(addresses.map((a) => a.address)),
    ),
  );

/** DNS answered that the name does not exist (rather than failing to answer). */
const NO_SUCH_NAME = new Set(['ENOTFOUND', 'ENODATA']);

/**
 * Whether an address is an ordinary public unicast one. Everything ipaddr.js names a special range
 * is refused: private, loopback, link-local (cloud metadata lives there), unique-local, carrier-grade
 * NAT, multicast, reserved, and the IPv6 forms that embed an IPv4 address (mapped, 6to4, Teredo,
 * NAT64) since they could smuggle a private one.
 */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  // `process` turns an IPv4-mapped IPv6 address back into IPv4, so `::ffff:10.0.0.1` is private.
  return ipaddr.process(address).range() === 'unicast';
}

/**
 * The rule for webhook targets, checked when a batch is created and again at every delivery (a name
 * may resolve elsewhere by then: DNS rebinding). Deployed: `https` only, and every address the host
 * resolves to must be public. The local stack (`allowPrivate`) also takes `http` and any address.
 */
export class CallbackPolicy {
  readonly allowPrivate: boolean;
  readonly #resolve: (host: string) => Promise<string[]>;

  constructor(options: CallbackPolicyOptions) {
    this.allowPrivate = options.allowPrivate;
    this.#resolve = options.resolve ?? resolveAll;
  }

  /**
   * Checks a URL when a batch is created; throws `CallbackUrlError`. A name that does not exist is
   * refused; a resolver that does not answer now is not held against the URL (delivery checks again).
   */
  async check(raw: string): Promise<void> {
    const url = this.#checkScheme(raw);
    if (this.allowPrivate) return;
    const host = hostOf(url);
    if (isIP(host)) return this.checkAddresses(host, [host]);
    let addresses: string[];
    try {
      addresses = await this.#resolve(host);
    } catch (cause) {
      const code = (cause as { code?: unknown }).code;
      if (typeof code === 'string' && NO_SUCH_NAME.has(code)) {
        throw new CallbackUrlError('unresolvable', `callbackUrl's host ${host} does not resolve.`, { cause });
      }
      return;
    }
    this.checkAddresses(host, addresses);
  }

  /** Throws unless every address of `host` may be called. */
  checkAddresses(host: string, addresses: readonly string[]): void {
    if (this.allowPrivate) return;
    if (addresses.length === 0) throw new CallbackUrlError('unresolvable', `${host} has no address.`);
    const refused = addresses.find((address) => !isPublicAddress(address));
    if (refused !== undefined) {
      throw new CallbackUrlError(
        'address',
        `callbackUrl's host ${host} resolves to ${refused}, a private, loopback or link-local address; use a public https endpoint.`,
      );
    }
  }

  /**
   * A `lookup` for `http.request` that resolves and checks in one step, so the connection goes to an
   * address that was checked (no window for the name to change between the check and the connect).
   */
  readonly lookup = (
    hostname: string,
    options: { all?: boolean; family?: number | string } | number,
    callback: (error: Error | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    const family = typeof options === 'number' ? options : Number(options.family ?? 0);
    dnsLookup(hostname, { all: true, family: family === 4 || family === 6 ? family : 0 }, (error, found) => {
      if (error) return callback(error, []);
      try {
        this.checkAddresses(
          hostname,
          found.map((a) => a.address),
        );
      } catch (refusal) {
        return callback(refusal as Error, []);
      }
      if (typeof options === 'object' && options.all) return callback(null, found);
      const first = found[0] as LookupAddress;
      callback(null, first.address, first.family);
    });
  };

  /** Checks the scheme (and, for an IP literal, the address: no lookup happens for it). */
  checkTarget(raw: string): URL {
    const url = this.#checkScheme(raw);
    const host = hostOf(url);
    if (isIP(host)) this.checkAddresses(host, [host]);
    return url;
  }

  #checkScheme(raw: string): URL {
    if (!URL.canParse(raw)) throw new CallbackUrlError('scheme', 'callbackUrl must be an absolute URL.');
    const url = new URL(raw);
    const allowed = this.allowPrivate ? ['https:', 'http:'] : ['https:'];
    if (!allowed.includes(url.protocol)) {
      throw new CallbackUrlError(
        'scheme',
        this.allowPrivate ? 'callbackUrl must be an http(s) URL.' : 'callbackUrl must be an https URL.',
      );
    }
    if (url.username || url.password) {
      throw new CallbackUrlError('scheme', 'callbackUrl must not carry credentials.');
    }
    return url;
  }
}

/** The URL's host without IPv6 brackets. */
function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}
