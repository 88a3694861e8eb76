import http from 'node:http';
import https from 'node:https';
import { ModelgateError } from '../../core/errors.js';
import { type AllowedEndpoint, EgressPolicy } from './egress.js';

/** The chat completions URL of an endpoint given as a base URL (or as that URL itself). */
export function completionsUrl(endpoint: string): string {
  const base = endpoint.replace(/\/+$/, '');
  return /\/chat\/completions$/.test(base) ? base : `${base}/chat/completions`;
}

/** One chat message of the OpenAI chat completions API. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** How a client behaves under failure and load. */
export interface ChatClientOptions {
  /** Per request, including retries' waits not counted. */
  timeoutMs: number;
  /** Retries of a request that failed for a reason worth retrying (429, 5xx, network, timeout). */
  retries: number;
  /** First backoff; doubles each retry, with jitter, capped at 30 s; Retry-After wins. */
  backoffMs: number;
  /** Open connections at most (keep-alive), normally the run's concurrency. */
  maxSockets: number;
  /** Largest response body read; a longer one is an error, not a truncation. */
  maxResponseBytes: number;
  /**
   * Whether the headers (credentials among them) may follow a same-origin redirect to this
   * URL: a secret bound to `/v1` does not go to `/admin` on the same host. Default: yes.
   */
  headersAllowedAt?: (url: string) => boolean;
}

const DEFAULTS: ChatClientOptions = {
  timeoutMs: 60_000,
  retries: 3,
  backoffMs: 500,
  maxSockets: 8,
  maxResponseBytes: 1024 * 1024,
};

/** What the endpoint answered, and how many retries it took. */
export interface ChatReply {
  content: string;
  retries: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(message);
  }
}

const MAX_REDIRECTS = 3;

/** Waits `ms`, or rejects with the signal's reason when it is aborted first. */
export const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', stop);
      resolve();
    }, ms);
    const stop = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener('abort', stop, { once: true });
  });

function retryAfter(v: string | undefined): number | undefined {
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/**
 * A client of one OpenAI-compatible `/chat/completions` endpoint that only ever connects where
 * the egress policy allows: the endpoint is checked before the first request, every redirect
 * target before it is followed (307 and 308 only: they keep the POST), and every DNS answer at
 * connect time. Keeps connections alive, times out, retries with backoff.
 */
export class ChatClient {
  private readonly endpoint: AllowedEndpoint;
  private readonly agent: http.Agent;
  private readonly opts: ChatClientOptions;

  constructor(
    private readonly policy: EgressPolicy,
    endpoint: string,
    private readonly model: string,
    private readonly headers: Record<string, string>,
    opts: Partial<ChatClientOptions> = {},
  ) {
    this.opts = { ...DEFAULTS, ...opts };
    this.endpoint = policy.check(completionsUrl(endpoint));
    const Agent = this.endpoint.url.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: this.opts.maxSockets });
  }

  /** The URL requests go to. */
  get url(): string {
    return this.endpoint.url.href;
  }

  close(): void {
    this.agent.destroy();
  }

  /** Sends one chat completion request, retrying what is worth retrying. */
  async complete(
    messages: ChatMessage[],
    params: { maxTokens: number; temperature: number },
    signal: AbortSignal,
  ): Promise<ChatReply> {
    const body = JSON.stringify({
      model: this.model,
      messages,
      max_tokens: params.maxTokens,
      temperature: params.temperature,
    });
    for (let attempt = 0; ; attempt++) {
      try {
        const content = await this.once(this.endpoint, body, signal, 0);
        return { content, retries: attempt };
      } catch (e) {
        if (signal.aborted) throw signal.reason ?? e;
        const retryable =
          e instanceof HttpError
            ? e.status === 429 || e.status >= 500
            : !(e instanceof ModelgateError);
        if (!retryable || attempt >= this.opts.retries) throw e;
        const backoff = Math.min(30_000, this.opts.backoffMs * 2 ** attempt);
        const wait =
          e instanceof HttpError && e.retryAfterMs !== undefined
            ? Math.min(60_000, e.retryAfterMs)
            : backoff / 2 + Math.random() * (backoff / 2);
        await sleep(wait, signal);
      }
    }
  }

  private once(
    target: AllowedEndpoint,
    body: string,
    signal: AbortSignal,
    redirects: number,
    withHeaders = true,
  ): Promise<string> {
    const timeout = AbortSignal.timeout(this.opts.timeoutMs);
    const both = AbortSignal.any([signal, timeout]);
    const request = target.url.protocol === 'https:' ? https.request : http.request;
    return new Promise<string>((resolve, reject) => {
      const req = request(
        target.url,
        {
          method: 'POST',
          agent: this.agent,
          signal: both,
          headers: {
            ...(withHeaders && this.headers),
            'content-type': 'application/json',
            accept: 'application/json',
            'content-length': Buffer.byteLength(body),
          },
          ...(target.resolve && { lookup: EgressPolicy.lookup }),
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status >= 300 && status < 400) {
            res.resume();
            const location = res.headers.location;
            if ((status !== 307 && status !== 308) || !location) {
              reject(
                new ModelgateError(
                  'ENDPOINT_NOT_ALLOWED',
                  `endpoint ${target.url.href} answered ${status}${location ? ` to ${location}` : ''}; only 307 and 308 redirects to allowed endpoints are followed`,
                  { endpoint: target.url.href },
                ),
              );
              return;
            }
            if (redirects >= MAX_REDIRECTS) {
              reject(new HttpError(status, `more than ${MAX_REDIRECTS} redirects`, undefined));
              return;
            }
            let next: AllowedEndpoint;
            try {
              next = this.policy.check(new URL(location, target.url).href);
            } catch (e) {
              reject(e);
              return;
            }
            // Headers (credentials among them) go only to the origin they were given for.
            const sameOrigin = next.url.origin === target.url.origin;
            const carry =
              withHeaders && sameOrigin && (this.opts.headersAllowedAt?.(next.url.href) ?? true);
            this.once(next, body, signal, redirects + 1, carry).then(resolve, reject);
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > this.opts.maxResponseBytes) {
              req.destroy(new Error(`response larger than ${this.opts.maxResponseBytes} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if (status !== 200) {
              reject(
                new HttpError(
                  status,
                  `endpoint answered ${status}: ${text.slice(0, 200)}`,
                  retryAfter(res.headers['retry-after']),
                ),
              );
              return;
            }
            try {
              const json = JSON.parse(text) as {
                choices?: { message?: { content?: unknown } }[];
              };
              const content = json.choices?.[0]?.message?.content;
              // A model may answer with no text at all (content null): that is an answer.
              if (content !== undefined && content !== null && typeof content !== 'string')
                throw new Error('choices[0].message.content is not a string');
              resolve(typeof content === 'string' ? content : '');
            } catch (e) {
              reject(
                new Error(
                  `endpoint answered 200 with a body that is not a chat completion: ${(e as Error).message}`,
                ),
              );
            }
          });
        },
      );
      req.on('error', (e) => {
        if (timeout.aborted && !signal.aborted)
          reject(new Error(`no answer within ${this.opts.timeoutMs} ms`));
        else reject(e);
      });
      req.end(body);
    });
  }
}
