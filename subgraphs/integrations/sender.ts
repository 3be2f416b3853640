// Outbound HTTP with the safety rules of webhooks: a timeout for the whole exchange, a bound on
// the answer read, no redirect followed (a 3xx is a failure), and no private, loopback or
// link-local address reached unless the operator allowed its network. The address is checked
// after DNS resolution, on the address the socket really connects to (the resolver's answer is
// checked inside the connection's own lookup), so a name that resolves to 127.0.0.1 is refused
// like the literal.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type BlockList } from 'node:net';
import { Agent, request } from 'undici';
import { addressRefusal } from './domain.ts';

export interface SendResult {
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
  /** The first bytes of the answer (EXCERPT_BYTES at most). */
  responseExcerpt: string | null;
  /** Retry-After as sent (seconds or date text), for the caller to parse. */
  retryAfter: string | undefined;
  /** True when the address was refused: nothing was sent. */
  blocked: boolean;
}

export interface SenderOptions {
  timeoutMs: number;
  /** The answer is read up to this many bytes, then the connection is dropped. */
  maxResponseBytes: number;
  allowed: BlockList;
  /** Concurrent connections per origin. */
  connections?: number;
}

const EXCERPT_BYTES = 1024;

class AddressRefused extends Error {
  readonly code = 'ADDRESS_REFUSED';
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

export class SafeSender {
  private readonly agent: Agent;

  constructor(private readonly options: SenderOptions) {
    const allowed = options.allowed;
    // Called by the socket for every host name it connects to: the resolved addresses are judged
    // before a connection is opened.
    const lookup = (hostname: string, opts: { all?: boolean; family?: number }, callback: LookupCallback) => {
      dnsLookup(hostname, { all: true, family: opts.family ?? 0 }, (err, addresses) => {
        if (err) return callback(err, []);
        for (const a of addresses) {
          const why = addressRefusal(a.address, allowed);
          if (why) return callback(new AddressRefused(`${hostname}: ${why}`), []);
        }
        if (opts.all) return callback(null, addresses);
        const first = addresses[0];
        if (!first) return callback(Object.assign(new Error(`${hostname} did not resolve`), { code: 'ENOTFOUND' }), []);
        callback(null, first.address, first.family);
      });
    };
    this.agent = new Agent({
      connect: { lookup: lookup as never, timeout: options.timeoutMs },
      connections: options.connections ?? 50,
      keepAliveTimeout: 4_000,
    });
  }

  /** POSTs the body; never throws: the outcome says what happened. */
  async post(url: string, headers: Record<string, string>, body: string): Promise<SendResult> {
    const started = performance.now();
    const elapsed = () => performance.now() - started;
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    // An IP literal never goes through the lookup above.
    if (isIP(host) !== 0) {
      const why = addressRefusal(host, this.options.allowed);
      if (why) return { statusCode: null, latencyMs: elapsed(), error: `refused: ${why}`, responseExcerpt: null, retryAfter: undefined, blocked: true };
    }
    const abort = AbortSignal.timeout(this.options.timeoutMs);
    try {
      const res = await request(url, {
        method: 'POST',
        dispatcher: this.agent,
        headers: { 'content-type': 'application/json', 'user-agent': 'agent-platform-webhooks/1', ...headers },
        body,
        signal: abort,
        headersTimeout: this.options.timeoutMs,
        bodyTimeout: this.options.timeoutMs,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      let truncated = false;
      let kept = 0;
      for await (const chunk of res.body) {
        const b = chunk as Buffer;
        if (kept < EXCERPT_BYTES) {
          chunks.push(b.subarray(0, EXCERPT_BYTES - kept));
          kept += Math.min(b.length, EXCERPT_BYTES - kept);
        }
        size += b.length;
        if (size > this.options.maxResponseBytes) {
          truncated = true;
          res.body.destroy();
          break;
        }
      }
      const excerpt = Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString('utf8');
      const retryAfter = res.headers['retry-after'];
      const status = res.statusCode;
      const ok = status >= 200 && status < 300;
      const error = truncated
        ? `answer larger than ${this.options.maxResponseBytes} bytes`
        : ok
          ? null
          : status >= 300 && status < 400
            ? `HTTP ${status}: redirects are not followed`
            : `HTTP ${status}`;
      return {
        statusCode: status,
        latencyMs: elapsed(),
        // An oversized answer of a 2xx still counts as delivered: the receiver took it.
        error: ok ? null : error,
        responseExcerpt: excerpt === '' ? null : excerpt,
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        blocked: false,
      };
    } catch (err) {
      const e = err as Error & { code?: string; cause?: Error & { code?: string } };
      const refusedAddress = e instanceof AddressRefused || e.cause instanceof AddressRefused;
      const message = refusedAddress
        ? `refused: ${(e instanceof AddressRefused ? e : (e.cause as Error)).message}`
        : abort.aborted
          ? `timed out after ${this.options.timeoutMs} ms`
          : `${e.code ?? e.cause?.code ?? e.name}: ${e.message}`;
      return { statusCode: null, latencyMs: elapsed(), error: message, responseExcerpt: null, retryAfter: undefined, blocked: refusedAddress };
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
